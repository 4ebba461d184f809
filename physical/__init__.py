"""physical: adversarial examples in the physical world (Kurakin, Goodfellow & Bengio 2016), end to end."""

__version__ = "0.1.0"
