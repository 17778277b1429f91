"""Call statistics per manager: computed once (``figures``), encoded once (``export``), shown by the
``report`` command and the ``/stats`` page (``page``)."""

from .export import to_csv, to_json
from .figures import GROUPINGS, Figures, Report, Row, compute, day_bounds, is_call

__all__ = ["GROUPINGS", "Figures", "Report", "Row", "compute", "day_bounds", "is_call", "to_csv", "to_json"]
