"""The model's figures written the same way everywhere: pages (as template filters), the admin, reports."""


# A figure and its unit stay on one line; a narrow column breaks only before the interval.
NBSP = "\u00a0"
RANGE = "\u2013\u2060"  # an en dash followed by a word joiner: no line break after it


def percent(fraction, digits=0):
    """0.953 -> "95 %"; None -> "n/a"."""
    if fraction is None or fraction == "":
        return "n/a"
    return f"{float(fraction) * 100:.{int(digits)}f}{NBSP}%"


def rate_with_interval(values):
    """[estimate, low, high] as fractions -> "31 % (22–40 %)" (no-break spaces before %); "n/a" where
    not measured."""
    if not values or values[0] is None:
        return "n/a"
    estimate, low, high = values
    return f"{estimate * 100:.0f}{NBSP}% ({low * 100:.0f}{RANGE}{high * 100:.0f}{NBSP}%)"


def auroc_with_interval(row):
    """A reliability row -> "0.72 (0.66–0.78)"; "n/a" where not measured."""
    if not row or row.get("auroc") is None or row.get("low") is None:
        return "n/a"
    return f"{row['auroc']:.2f} ({row['low']:.2f}{RANGE}{row['high']:.2f})"
