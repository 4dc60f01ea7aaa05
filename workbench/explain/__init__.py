"""`wb explain`: where a detector looks, per box (class activation maps).

- ``cam.py``: the grad-cam package's CAMs on a registered model (the one place torch
  and the library are used);
- ``evidence.py``: the inverted-activation check (heatmap energy inside the box);
- ``pictures.py``: per detection a picture, per run an HTML contact sheet;
- ``store.py``: the folder layout and the index `wb review` reads (no torch);
- ``run.py``: one run, as a list of steps (``explain_images``).
"""
