"""`physical lab`: the lecture's earlier experiments, each reproducible with one command.

- `szegedy`    (Szegedy et al. 2014) small models on real digits, box-constrained L-BFGS minimal
               targeted perturbations, the cross-model transfer table with Gaussian-noise rows;
- `linearity`  (Goodfellow et al. 2015) FGSM error rate and wrong-class confidence vs ε for linear
               and non-linear models;
- `directions` (Szegedy et al. 2014) images maximising a unit ⟨φ(x), e_i⟩ vs a random direction
               ⟨φ(x), v⟩ of an ImageNet model's layer.

Pixel scale inside this package: the digit experiments work on [0, 1] (as the papers do);
`directions` feeds the ImageNet `Classifier` float images in [0, 255] (docs/internals.md).
"""
