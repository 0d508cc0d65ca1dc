"""Rates with intervals, and the verdict rules of chapter 05's claims.

Every claim of the chapter compares fractions of strings (memorized,
completed) over a handful of strings, so each rate gets a Wilson score
interval and each comparison of two rates Newcombe's interval for their
difference (the "hybrid score" interval built from the two Wilson
intervals, method 10 of Newcombe 1998). A verdict is ``True``, ``False`` or
:data:`reprobook.claims.INCONCLUSIVE` from a rule fixed before the run.
"""

from __future__ import annotations

from statistics import NormalDist

from ..claims import INCONCLUSIVE

Z95 = 1.959963984540054  # the two-sided 95% normal quantile


def wilson(count: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of the proportion ``count / n`` (statsmodels)."""
    from statsmodels.stats.proportion import proportion_confint

    if n < 1 or not 0 <= count <= n:
        raise ValueError(f"need 0 <= count <= n and n >= 1, got {count} of {n}")
    lo, hi = proportion_confint(count, n, alpha=2 * (1 - NormalDist().cdf(z)), method="wilson")
    return float(lo), float(hi)


def rate_difference(a: int, na: int, b: int, nb: int, z: float = Z95) -> tuple[float, float, float]:
    """``(a/na - b/nb, low, high)``: the difference of two independent rates and
    Newcombe's hybrid-score interval for it (statsmodels' ``"newcomb"``)."""
    from statsmodels.stats.proportion import confint_proportions_2indep

    for count, n in ((a, na), (b, nb)):
        if n < 1 or not 0 <= count <= n:
            raise ValueError(f"need 0 <= count <= n and n >= 1, got {count} of {n}")
    lo, hi = confint_proportions_2indep(a, na, b, nb, method="newcomb", compare="diff",
                                        alpha=2 * (1 - NormalDist().cdf(z)))
    return a / na - b / nb, float(lo), float(hi)


def greater_verdict(a: int, na: int, b: int, nb: int, margin: float) -> tuple[float, float, float, bool | str]:
    """Rule for "rate a is higher than rate b": ``True`` when the difference's
    95% interval lies above 0, ``False`` when it lies below ``margin`` (the
    data rule out a difference as large as ``margin``), else inconclusive."""
    d, lo, hi = rate_difference(a, na, b, nb)
    holds = True if lo > 0 else (False if hi < margin else INCONCLUSIVE)
    return d, lo, hi, holds


def some_verdict(count: int, n: int, floor: float) -> tuple[float, float, bool | str]:
    """Rule for "some strings are memorized, at a rate like the paper's":
    ``True`` when at least one is (the Wilson interval leaves 0), ``False``
    when the interval's upper end is below ``floor`` (the paper's smallest
    rate is ruled out), else inconclusive."""
    lo, hi = wilson(count, n)
    return lo, hi, True if count > 0 else (False if hi < floor else INCONCLUSIVE)


def none_verdict(count: int, n: int, control: int, n_control: int) -> tuple[bool | str, float, float]:
    """Rule for "these strings are not memorized": ``False`` if any is; ``True``
    if none is and a positive control (strings the model is known to hold,
    searched the same way) is memorized at a rate whose difference from
    these strings' has a 95% interval above 0, so the search could have found
    one; else inconclusive (the search found nothing anywhere). Returns the
    verdict and the difference's interval."""
    _, lo, hi = rate_difference(control, n_control, count, n) if n_control else (0.0, 0.0, 0.0)
    if count > 0:
        return False, lo, hi
    return (True if lo > 0 else INCONCLUSIVE), lo, hi
