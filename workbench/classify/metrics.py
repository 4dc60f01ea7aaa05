"""Classification scores from true and predicted class indices (no torch).

Binary tasks (two classes, the positive first): precision, recall and f-score of the
positive class. Multi-class: their macro means over the classes present in the set (in its truth or
its predictions, as scikit-learn's default); a present class never predicted has
precision 0, a class absent from both does not count."""

from __future__ import annotations


def confusion(truth: list[int], pred: list[int], n: int) -> list[list[int]]:
    """rows: true class, columns: predicted class."""
    m = [[0] * n for _ in range(n)]
    for t, p in zip(truth, pred, strict=True):
        m[t][p] += 1
    return m


def _prf(m: list[list[int]], c: int) -> tuple[float, float, float]:
    tp = m[c][c]
    predicted = sum(row[c] for row in m)
    actual = sum(m[c])
    p = tp / predicted if predicted else 0.0
    r = tp / actual if actual else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def scores(truth: list[int], pred: list[int], n: int) -> dict[str, float]:
    m = confusion(truth, pred, n)
    total = sum(map(sum, m))
    acc = sum(m[i][i] for i in range(n)) / total if total else 0.0
    if n == 2:
        p, r, f = _prf(m, 0)
    else:
        present = [c for c in range(n) if sum(m[c]) or sum(row[c] for row in m)]
        per = [_prf(m, c) for c in present]
        p, r, f = (sum(x[i] for x in per) / len(per) if per else 0.0 for i in range(3))
    return {"accuracy": acc, "precision": p, "recall": r, "f_score": f, "n": total}
