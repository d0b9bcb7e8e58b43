"""Report outputs: Rich table, JSON/CSV and a self-contained HTML page."""

from sync.funnel.report.html import render_html
from sync.funnel.report.json_csv import report_to_csv, report_to_json
from sync.funnel.report.table import render_table

__all__ = ["render_html", "render_table", "report_to_csv", "report_to_json"]
