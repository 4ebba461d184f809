"""`physical craft`: clean + adversarial 8-bit PNGs and the run's manifest.

For every source image: the canonical clean PNG (resized and centre-cropped to the model's input,
uint8), then for every attack × ε the adversarial image, rounded to uint8 and saved as PNG. Each
PNG is read back and classified — the score is the score of what was saved — and the prediction
before quantisation is kept beside it, so the manifest says how many predictions 8 bits flipped.

The manifest is rewritten (atomically) after every batch: an interrupted run resumes where it
stopped, skipping images whose PNGs are all there with the recorded sha256.
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
import shutil
from dataclasses import dataclass, replace
from datetime import datetime, timezone

import numpy as np
import torch

from physical import accel, attacks as atk
from physical import craft_rerun as rerun
from physical import distributed, heap, records, robust
from physical.data import ClassTable, collect, subset
from physical.errors import PhysicalError
from physical.models import load_model, model_info, pred_record, predict
from physical.presets import DEFAULT_CHANNEL
from physical.quantize import decode_png, encode_png, quantization_error, to_uint8
from physical.workspace import (SCHEMA_VERSION, Workspace, atomic_write_bytes, atomic_write_json, run_locked,
                                check_run_name, package_versions, sha256_bytes, sha256_file)

log = logging.getLogger(__name__)
DEFAULT_ATTACKS = ("fgsm", "bim", "ill", "noise")
DEFAULT_EPS = (2.0, 4.0, 8.0, 16.0)


@dataclass
class CraftOptions:
    images: str = "demo"
    labels: str | None = None
    attacks: tuple = DEFAULT_ATTACKS
    eps: tuple = DEFAULT_EPS
    model: str = "default"
    arch: str | None = None
    limit: int | None = None
    seed: int = 0
    batch_size: int | None = 16   # None: fit the device (accel.auto_batch_size)
    device: str = "auto"
    alpha: float = 1.0
    steps: int | None = None
    force: bool = False
    progress: bool = True
    shard: str | None = None      # "K/N": craft only images i % N == K (physical.distributed)
    eot_samples: int = atk.EOT_SAMPLES   # EOT and targeted attacks: physical/robust.py
    eot_steps: int | None = None
    channel: str = DEFAULT_CHANNEL
    target: str | None = None


def attack_settings(options: CraftOptions) -> dict:
    """The manifest's `attacks` block: everything that determines the pixels."""
    settings = {}
    for name in options.attacks:
        entry = {"eps": [float(e) for e in options.eps]}
        if name in atk.ITERATIVE:
            entry.update({
                "alpha": float(options.alpha),
                "steps": {f"{e:g}": (options.steps or atk.paper_steps(e)) for e in options.eps},
                "steps_rule": "given by --steps" if options.steps else "int(min(eps + 4, 1.25 * eps))",
            })
        if name == "ill":
            entry["target"] = "argmin of the clean image's logits, fixed for all steps"
        if name == "noise":
            entry["kind"] = "uniform random sign, ±eps per value, clipped to [0, 255]"
        if name == "gauss":
            entry["kind"] = "Gaussian, L2 norm eps*sqrt(d) per image (FGSM's), clipped to [0, 255]"
        settings[name] = entry
    return settings


def validate(options: CraftOptions) -> None:
    unknown = [a for a in options.attacks if a not in atk.ATTACKS]
    if unknown:
        raise PhysicalError(f"unknown attack {unknown[0]!r}: choose from {', '.join(atk.ATTACKS)}")
    if not options.attacks:
        raise PhysicalError("no attacks given")
    for e in options.eps:
        try:
            atk.check_eps(e, positive=True)
        except ValueError as exc:
            raise PhysicalError(str(exc)) from None
    if not (math.isfinite(options.alpha) and options.alpha > 0):
        raise PhysicalError(f"--alpha must be a positive number, got {options.alpha:g}")
    if options.seed < 0:
        raise PhysicalError(f"--seed must be 0 or more, got {options.seed}")
    if options.steps is not None and options.steps < 1:
        raise PhysicalError(f"--steps must be at least 1, got {options.steps}")
    if options.batch_size is not None and options.batch_size < 1:
        raise PhysicalError(f"--batch-size must be at least 1, got {options.batch_size}")
    robust.validate(options)


def _check_compatible(old: dict, info: dict, settings: dict, run: str) -> None:
    if old.get("model", {}).get("weights_sha256") != info["weights_sha256"]:
        raise PhysicalError(
            f"run {run!r} was crafted with model {old.get('model', {}).get('spec')!r} "
            f"(other weights); use --force to redo it with {info['spec']!r}, or another --run")
    for name, entry in settings.items():
        before = old.get("attacks", {}).get(name)
        if before is None:
            continue
        robust.check_same_channel(run, name, before, entry)
        # Steps are per ε: only the ε values both runs made must agree.
        shared = set(before.get("steps", {})) & set(entry.get("steps", {}))
        for key, then, now in [("alpha", before.get("alpha"), entry.get("alpha")),
                               *[(f"steps at ε {e}", before["steps"][e], entry["steps"][e]) for e in sorted(shared)]]:
            if then != now:
                # the option that continues the run as it was made (steps: only when the runs share one ε, which one value matches)
                option = "--alpha" if key == "alpha" else ("--eot-steps" if name == "eot" else "--steps")
                again = f"continue it with {option} {then:g}, " if key == "alpha" or len(shared) == 1 else ""
                raise PhysicalError(f"run {run!r} made {name} with other settings ({key}: {then} vs {now}); "
                                    f"{again}use --force, or another --run")


def _merge_attacks(old: dict, new: dict) -> dict:
    merged = {k: dict(v) for k, v in old.items()}
    for name, entry in new.items():
        if name not in merged:
            merged[name] = dict(entry)
            continue
        merged[name]["eps"] = sorted(set(merged[name]["eps"]) | set(entry["eps"]))
        if "steps" in entry:
            merged[name]["steps"] = {**merged[name].get("steps", {}), **entry["steps"]}
    return merged


def _image_done(entry: dict, variants: list[str], folder) -> bool:
    for v in variants:
        rec = entry.get("variants", {}).get(v)
        if rec is None and v in entry.get("skipped_variants", {}):
            continue
        if rec is None:
            return False
        path = folder / rec["file"]
        if not path.exists() or sha256_file(path) != rec["sha256"]:
            return False
    return True


def _noise_generator(seed: int, image_id: str, variant: str) -> torch.Generator:
    # One stream per image and variant: the noise does not depend on batch composition.
    digest = hashlib.sha256(f"{seed}/{image_id}/{variant}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))


def craft(ws: Workspace, run: str, options: CraftOptions) -> dict:
    """Craft a run; returns the manifest (also written to printouts/<run>/manifest.json)."""
    # A --shard K/N job holds that shard's lock (the jobs of one run go on side by side); torchrun
    # ranks run under rank 0's lock of the whole run (physical.workspace.RunLock).
    with ws.lock(run, "craft", shard=options.shard):
        return _craft(ws, run, options)


def _craft(ws: Workspace, run: str, options: CraftOptions) -> dict:
    check_run_name(run)
    validate(options)
    folder = ws.printouts(run)
    manifest_path = ws.manifest_path(run)
    _check_inputs(options, folder)  # before the model loads: a typo costs no time
    old = ws.load_manifest(run).dump() if manifest_path.exists() else None  # validated by physical.records
    model = load_model(options.model, options.device, arch=options.arch)
    model = model.to(memory_format=torch.channels_last)  # ~1.3× faster convolutions on CPU
    device = next(model.parameters()).device
    numerics = accel.configure_numerics()  # TF32 off: reproducible gradient signs
    if options.batch_size is None:
        options = replace(options, batch_size=accel.auto_batch_size(model, device))
    info = model_info(model)
    table = ClassTable(model.wnids, model.class_names)
    known = {} if options.force else rerun.known_ids(old, options.images)
    every, skipped = collect(options.images, table, options.labels, None, options.seed, known_ids=known)
    all_items = subset(every, options.limit, options.seed)
    # Scale-out hook: under torchrun or --shard K/N this process crafts images i % N == K only.
    part = distributed.partition(options.shard)
    items = part.select(all_items)
    plan = robust.plan(options, table)
    settings = robust.settings(attack_settings(options), options, plan)

    staging = None
    if options.force and part.sharded:
        # each job or rank would replace the others' images: --force is for one process
        raise PhysicalError("--force with --shard or several ranks would let each job delete the others' images: "
                            "run `physical craft --force` once in one process, or remove the run folder first")
    if old is not None and options.force:
        # --force: craft the run again beside the old one; swapped in at the very end.
        staging, old = rerun.make_staging(folder), None
    if old is not None:
        rerun.check_rerun(run, old, every, all_items, options.limit, options.seed, skipped, options.images)
        _check_compatible(old, info, settings, run)
        # The seed made the noise baselines: already saved ones (kept in the merged manifest) count too.
        seeded = set(options.attacks) | set(old.get("attacks") or {})
        if old.get("seed") != options.seed and seeded & {"noise", "gauss"}:
            raise PhysicalError(f"run {run!r} used --seed {old.get('seed')}; use it again, --force, or another --run")

    variants = ["clean"] + robust.variants(options, plan)
    entries = {e["id"]: e for e in old["images"]} if old else {}
    for record in distributed.leftovers(folder):  # shards not merged yet (e.g. a rank that died)
        _check_compatible(record, info, settings, run)
        entries.update({e["id"]: e for e in record["images"]})
    manifest = {
        "schema": SCHEMA_VERSION, "run": run,
        "created": old["created"] if old else datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": info,
        "attacks": _merge_attacks(old["attacks"], settings) if old else settings,
        "seed": options.seed, "versions": package_versions(), "numerics": numerics,
        "source": {"images": options.images, "labels": options.labels, "limit": options.limit},
        "variants": list(dict.fromkeys((old["variants"] if old else []) + variants)),
        "images": [], "skipped": [vars(s) for s in skipped], "summary": {},
    }

    try:
        return _craft_items(model, device, table, items, entries, manifest, old, variants, options, ws, run,
                            folder, manifest_path, staging, part, all_items, len(skipped), plan)
    except BaseException:
        if staging is not None:  # a failed --force: the old run stays as it was
            shutil.rmtree(staging, ignore_errors=True)
        raise


def _check_inputs(options: CraftOptions, folder) -> None:
    """What can be checked without the model: the source folder, the labels file, a writable run folder."""
    if options.images != "demo" and not options.images.startswith("demo:"):
        if not os.path.exists(options.images):
            raise PhysicalError(f"image folder {options.images} does not exist")
        if not os.path.isdir(options.images):
            raise PhysicalError(f"{options.images} is not a folder (give a folder of images, or 'demo')")
    if options.labels and not os.path.isfile(options.labels):
        raise PhysicalError(f"labels file {options.labels} does not exist")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PhysicalError(f"cannot write {folder}: {exc.strerror or exc}") from None


def _craft_items(model, device, table, items, entries, manifest, old, variants, options, ws, run, folder,
                 manifest_path, staging, part, all_items, n_skipped, plan) -> dict:
    out_folder = staging if staging is not None else folder  # where the PNGs are written
    todo = [it for it in items if not (it.id in entries and _image_done(entries[it.id], variants, folder))]
    log.info("%d images, %d already done", len(items), len(items) - len(todo))
    from tqdm import tqdm

    # One tick per image and attack: BIM/ILL at large ε take most of the time.
    bar = tqdm(total=len(todo) * len(options.attacks), desc=f"craft {run}", unit="img×attack",
               disable=not options.progress or not todo)
    # Decoded by DataLoader workers a batch ahead of the model.
    for chunk in accel.decoded_batches(todo, options.batch_size, model.input_size, model.preprocessing["resize"]):
        batch = []
        for item, image in chunk:
            if isinstance(image, ValueError):
                manifest["skipped"].append({"source": item.path, "reason": str(image)})
                bar.update(len(options.attacks))
            else:
                batch.append((item, image))
        if batch:
            with heap.large_heap():  # CPU: activations reused, not mapped afresh on every pass
                crafted = _craft_batch(model, device, batch, options, table, out_folder, entries,
                                       on_attack=lambda: bar.update(len(batch)), plan=plan)
            for entry in crafted:
                entries[entry["id"]] = entry
        manifest["images"] = [entries[it.id] for it in items if it.id in entries]
        if part.sharded:
            manifest["summary"] = summarize(manifest)
            distributed.write_shard(part, folder, manifest, all_items, n_skipped)
        elif manifest["images"] and staging is None:  # never leave a manifest of nothing behind
            manifest["summary"] = summarize(manifest)
            records.write(records.MANIFEST, ws, run, manifest)
    bar.close()

    manifest["images"] = [entries[it.id] for it in items if it.id in entries]
    if part.sharded:  # this shard's record; under torchrun rank 0 merges them into the manifest
        manifest["summary"] = summarize(manifest)
        return distributed.finish_craft(part, ws, run, manifest, all_items, n_skipped)
    if not manifest["images"]:
        reasons = "; ".join(sorted({s["reason"] for s in manifest["skipped"]}))[:300]
        raise PhysicalError(f"no image could be read from {options.images} ({reasons})")
    manifest["summary"] = summarize(manifest)
    if staging is not None:
        rerun.swap_in(folder, staging, lambda: records.write(records.MANIFEST, ws, run, manifest))
    elif manifest != old:  # an unchanged manifest keeps its mtime: later stages see nothing new
        records.write(records.MANIFEST, ws, run, manifest)
    distributed.clear_shards(folder)  # their images are in the manifest now
    return manifest


def _save_variant(folder, image_id: str, variant: str, image: np.ndarray) -> tuple[dict, np.ndarray]:
    data = encode_png(image)
    rel = f"images/{image_id}/{variant}.png"
    atomic_write_bytes(folder / rel, data)
    return {"file": rel, "sha256": sha256_bytes(data)}, decode_png((folder / rel).read_bytes())


def _craft_batch(model, device, batch, options: CraftOptions, table: ClassTable, folder, entries,
                 on_attack=lambda: None, plan: robust.Plan | None = None):
    ids = [item.id for item, _ in batch]
    clean_u8 = np.stack([img for _, img in batch])
    x = torch.from_numpy(clean_u8).permute(0, 3, 1, 2).float().to(device).contiguous(memory_format=torch.channels_last)
    y = torch.tensor([item.label for item, _ in batch], device=device)
    out = []
    for n, (item, img) in enumerate(batch):
        prev = entries.get(item.id, {})
        out.append({"id": item.id, "source": item.path if options.images != "demo" else f"demo:{item.id}",
                    "source_file": item.rel,
                    "source_sha256": sha256_file(item.path), "label": table.describe(item.label),
                    "variants": dict(prev.get("variants", {}))})
    # Clean: the canonical PNG, scored as read back.
    readback = []
    for n, image_id in enumerate(ids):
        rec, back = _save_variant(folder, image_id, "clean", clean_u8[n])
        out[n]["variants"]["clean"] = rec
        readback.append(back)
    top, prob = predict(model, np.stack(readback), options.batch_size)
    for n in range(len(batch)):
        out[n]["variants"]["clean"]["pred"] = pred_record(top[n], prob[n])

    # Untargeted BIM and ILL together (atk.run_attacks); on CUDA a pass holds at most --batch-size
    # images (what auto_batch_size found to fit), on CPU atk.CPU_PASS_IMAGES (cache and page faults).
    joint = [n for n in options.attacks if n in atk.ITERATIVE and not (plan and plan.targeted(n))]
    shared = {}
    if len(joint) > 1:
        shared = atk.run_attacks(joint, model, x, y, options.eps, alpha=options.alpha, steps=_steps(options),
                                 max_batch=options.batch_size if device.type == "cuda" else atk.CPU_PASS_IMAGES)
    for name in options.attacks:
        outputs = robust.attack_outputs(name, model, x, y, ids, options, plan, out) if plan else None
        if outputs is None:
            advs = shared.pop(name) if name in shared else _plain_attack(name, model, x, y, ids, options)
            outputs = [(e, atk.variant_name(name, e), x_adv, range(len(batch)))
                       for e, x_adv in zip(options.eps, advs)]
        for e, variant, x_adv, rows in outputs:
            if not len(rows):
                continue
            top_f, prob_f = predict(model, x_adv, options.batch_size)
            u8 = to_uint8(x_adv)
            readback = []
            for j, n in enumerate(rows):
                rec, back = _save_variant(folder, ids[n], variant, u8[j])
                delta = back.astype(np.int16) - clean_u8[n].astype(np.int16)
                rec.update({"attack": name, "eps": float(e),
                            "linf": int(np.abs(delta).max()), "mean_abs": round(float(np.abs(delta).mean()), 4),
                            "quantization": quantization_error(x_adv[j], back)})
                if atk.variant_target(variant) is not None:
                    rec["target"] = atk.variant_target(variant)
                out[n]["variants"][variant] = rec
                readback.append(back)
            top, prob = predict(model, np.stack(readback), options.batch_size)
            for j, n in enumerate(rows):
                rec = out[n]["variants"][variant]
                rec["pred_float"] = pred_record(top_f[j], prob_f[j])
                rec["pred"] = pred_record(top[j], prob[j])
                rec["quantization_flipped"] = int(top_f[j][0]) != int(top[j][0])
        on_attack()
    return out


def _plain_attack(name: str, model, x, y, ids, options: CraftOptions) -> list:
    if name in ("noise", "gauss"):
        per_eps = [[] for _ in options.eps]
        for n, image_id in enumerate(ids):
            for k, e in enumerate(options.eps):
                gen = _noise_generator(options.seed, image_id, atk.variant_name(name, e))
                per_eps[k].append(atk.run_attack(name, model, x[n:n + 1], y[n:n + 1], [e], generator=gen)[0])
        return [torch.cat(v) for v in per_eps]
    return atk.run_attack(name, model, x, y, options.eps, alpha=options.alpha, steps=_steps(options))


def _steps(options: CraftOptions) -> dict | None:
    return {e: options.steps for e in options.eps} if options.steps else None


def summarize(manifest: dict) -> dict:
    images = manifest["images"]
    n = len(images)
    if not n:
        return {"images": 0}

    def top1(variant):
        hits = [e["variants"][variant]["pred"]["top5"][0] == e["label"]["index"]
                for e in images if variant in e["variants"]]
        return round(sum(hits) / len(hits), 4) if hits else None

    adv = [v for v in manifest["variants"] if v != "clean"]
    flips = sum(e["variants"][v].get("quantization_flipped", False) for e in images for v in adv if v in e["variants"])
    total = sum(1 for e in images for v in adv if v in e["variants"])
    return {"images": n, "skipped": len(manifest.get("skipped", [])), "clean_top1": top1("clean"),
            "adv_top1": {v: top1(v) for v in adv}, "quantization_flips": flips, "adversarial_pngs": total}


def summary_line(manifest: dict, folder) -> str:
    s = manifest["summary"]
    by_attack: dict[str, list[str]] = {}
    for variant, top1 in s["adv_top1"].items():
        if top1 is not None:
            attack, eps = atk.parse_variant(variant)
            by_attack.setdefault(attack, []).append(f"{eps:g}: {100 * top1:.0f}%")
    adv = "; ".join(f"{attack} ε {', '.join(parts)}" for attack, parts in by_attack.items())
    return (f"crafted {s['images']} images ({s['skipped']} skipped) → {folder}\n"
            f"top-1 accuracy: clean {100 * s['clean_top1']:.0f}% | {adv}\n"
            f"quantisation to 8-bit PNG flipped {s['quantization_flips']} of {s['adversarial_pngs']} adversarial predictions")
