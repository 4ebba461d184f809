"""The static HTML report of a run: `reports/<run>/index.html` (+ `plots/`, `images/`, `thumbs/`).

    inputs.py   the run's files → normalised records (the only module that reads the run)
    tables.py   records → the tables and numbers the page shows (pure functions)
    plots.py    records → matplotlib figures
    gallery.py  sampled images, thumbnails and perturbations copied into the report folder
    robust.py   "standard vs robust": BIM vs EOT, targeted success/survival, perturbation sizes, targeted gallery
    calibration.py  the run's calibration profile: held-out ΔE, tone curves, chart photo, printability
    page.py     the sections, the jinja2 template (physical/templates/report.html), index.html

Works on a partial run and says on the page which stages are missing. The folder is
self-contained: every image the page shows is copied (or drawn) into it, every link is relative,
nothing is fetched from the network, and the CSS is inlined; it can be zipped and sent. Text
from the inputs (image ids, labels, file names, reasons) is data: the template is rendered with
autoescape on. The report runs no model: predictions come from the manifest (PNGs) and from
metrics.json (photo crops, stored by evaluate).
"""
from physical.report.gallery import choose_sample, perturbation_image
from physical.report.inputs import imagenet_names, ingest_view, manifest_view, metrics_view, read_run
from physical.report.page import build_report
from physical.report.tables import acceptance_curves, paper_tables, stage_list, transfer_matrix

__all__ = ["build_report", "read_run", "manifest_view", "metrics_view", "ingest_view", "acceptance_curves",
           "paper_tables", "transfer_matrix", "stage_list", "perturbation_image", "choose_sample", "imagenet_names"]
