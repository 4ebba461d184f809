"""`python -m physical`: the CLI, also as torchrun's module (`torchrun ... -m physical -- craft ...`)."""
import sys

from physical.cli import main

if __name__ == "__main__":
    if sys.argv[1:2] == ["--"]:  # torchrun passes on the `--` that keeps its parser off our options
        del sys.argv[1]
    sys.exit(main(prog_name="physical"))
