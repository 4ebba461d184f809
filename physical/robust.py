"""Craft's robust and targeted attacks: EOT through the channel, `--target CLASS`.

Kept out of craft.py, which calls four functions: `validate` (bad input, one line each),
`plan` (target class and channel resolved once per craft), `variants` (the names to craft) and
`attack_outputs` (the adversarial batches, with images skipped for a targeted variant recorded
in their manifest entry as `skipped_variants: {variant: reason}`).

Targeted variants: `<attack>-eps<ε>-to<class index>` for fgsm, bim and eot (ILL keeps its own
least-likely target). Their records carry `"target": index`; the manifest's attacks block has
an entry `<attack>-to<index>` with the target's index, wnid and name.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from physical import attacks as atk
from physical.errors import PhysicalError

TARGETABLE = ("fgsm", "bim", "eot")


@dataclass
class Plan:
    target: int | None          # class index, or None (untargeted)
    target_info: dict | None    # {"index", "wnid", "name"}
    channel: object | None      # physical.channel.Channel when eot is crafted

    def targeted(self, attack: str) -> bool:
        return self.target is not None and attack in TARGETABLE


def validate(options) -> None:
    """One-line errors for --eot-samples, --eot-steps, --channel and --target (before any model loads)."""
    if options.eot_samples is None or int(options.eot_samples) != options.eot_samples or options.eot_samples < 1:
        raise PhysicalError(f"--eot-samples must be a positive whole number, got {options.eot_samples}")
    if options.eot_steps is not None and options.eot_steps < 1:
        raise PhysicalError(f"--eot-steps must be at least 1, got {options.eot_steps}")
    if "eot" in options.attacks:
        channel_for(options.channel)
    if options.target is not None and not str(options.target).strip():
        raise PhysicalError("--target is empty: " + HOW_TO_NAME)


HOW_TO_NAME = ("name a class by its index 0-999 (e.g. 924), its wnid (e.g. n07583066) or its name "
               "(e.g. guacamole)")


def channel_for(spec: str):
    """The channel of `--channel`: a preset name or a calibration profile's path (physical/profile_channel.py)."""
    from physical.profile_channel import channel_for as resolve

    return resolve(spec)


def check_same_channel(run: str, name: str, before: dict, now: dict) -> None:
    """A resumed craft keeps earlier eot variants only if they went through the same channel."""
    from physical.profile_channel import channel_identity

    then, new = channel_identity(before), channel_identity(now)
    if then is not None and then == new and then[0] == "preset":
        # the same preset's name, but the ranges its manifest entry records changed (e.g. phone's shadow plug)
        ranges = [e["channel"].get("ranges") for e in (before, now)]
        if None not in ranges and ranges[0] != ranges[1]:
            raise PhysicalError(f"run {run!r} made {name} through preset {then[1]} as an earlier version of physical "
                                f"drew it (its ranges have changed since); use --force to redo them, or another --run")
    if then is not None and new is not None and then != new:
        ref = before["channel"].get("profile")
        again = f"--channel {ref.get('path') if then[0] == 'profile' else then[1]}"   # what continues it
        raise PhysicalError(f"run {run!r} made {name} through another channel ({then[0]} {then[1]} vs "
                            f"{new[0]} {new[1]}); continue it with {again}, or use --force, or another --run")


def plan(options, table) -> Plan:
    target = info = None
    if options.target is not None:
        target = table.resolve(str(options.target))
        if target is None:
            raise PhysicalError(f"--target {options.target!r} names no class: {HOW_TO_NAME}")
        info = table.describe(target)
    channel = channel_for(options.channel) if "eot" in options.attacks else None
    return Plan(target, info, channel)


def variants(options, p: Plan) -> list[str]:
    return [atk.variant_name(a, e, p.target if p.targeted(a) else None) for a in options.attacks for e in options.eps]


def settings(base: dict, options, p: Plan) -> dict:
    """The manifest's attacks block with the EOT entry and the targeted entries' own keys."""
    out = {}
    for name, entry in base.items():
        entry = dict(entry)
        if name == "eot":
            targeted = p.targeted(name)
            steps = {f"{e:g}": (options.eot_steps or atk.eot_steps(e, targeted)) for e in options.eps}
            rule = (f"{atk.EOT_TARGETED_STEPS} * int(min(eps + 4, 1.25 * eps)), BIM's times {atk.EOT_TARGETED_STEPS} (targeted)"
                    if targeted else "int(min(eps + 4, 1.25 * eps)), as BIM")
            entry.update({"alpha": float(options.alpha), "steps": steps, "samples": int(options.eot_samples),
                          "steps_rule": "given by --eot-steps" if options.eot_steps else rule,
                          "seed": options.seed,
                          "channel": p.channel.describe(),
                          "gradient": "mean cross-entropy over the samples, samples drawn afresh every step"})
        if p.targeted(name):
            entry.update({"attack": name, "target": p.target_info})
            name = f"{name}-to{p.target}"
        out[name] = entry
    return out


def _seed(seed: int, image_id: str, variant: str) -> int:
    digest = hashlib.sha256(f"{seed}/{image_id}/{variant}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def attack_outputs(name: str, model, x: torch.Tensor, y: torch.Tensor, ids: list[str], options, p: Plan,
                   entries: list[dict]):
    """[(ε, variant, adversarial batch, rows of the batch it holds)] for eot and targeted attacks;
    None for the attacks craft makes itself."""
    if not (name == "eot" or p.targeted(name)):
        return None
    rows = list(range(len(ids)))
    goal = y
    if p.targeted(name):
        rows = [n for n in rows if int(y[n]) != p.target]
        for n in set(range(len(ids))) - set(rows):
            reason = f"its label is the target class ({p.target} {p.target_info['name']})"
            for e in options.eps:
                entries[n].setdefault("skipped_variants", {})[atk.variant_name(name, e, p.target)] = reason
        if not rows:
            return []
        goal = torch.full((len(rows),), p.target, dtype=y.dtype, device=y.device)
    xs = x[rows]
    target = p.target if p.targeted(name) else None
    if name == "fgsm":
        advs = atk.fgsm_targeted_sweep(model, xs, goal, options.eps)
    elif name == "bim":
        advs = [atk.bim_targeted(model, xs, goal, e, options.alpha, options.steps) for e in options.eps]
    else:
        advs = [atk.eot(model, xs, goal if target is not None else y[rows], e, p.channel,
                        samples=options.eot_samples, alpha=options.alpha, steps=options.eot_steps,
                        targeted=target is not None,
                        seeds=[_seed(options.seed, ids[n], atk.variant_name(name, e, target)) for n in rows])
                for e in options.eps]
    return [(e, atk.variant_name(name, e, target), adv, rows) for e, adv in zip(options.eps, advs)]
