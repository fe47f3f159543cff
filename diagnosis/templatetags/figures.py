"""Template filters that write the model's figures the same way on every page (``dispredo_core.figures``)."""

from django import template

from dispredo_core.figures import auroc_with_interval, percent, rate_with_interval

register = template.Library()
register.filter("percent", percent)
register.filter("rate_with_interval", rate_with_interval)
register.filter("auroc_with_interval", auroc_with_interval)
