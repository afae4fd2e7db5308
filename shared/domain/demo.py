"""The demo township: every service's demo data (dispatch's roster, intake's common questions)
belongs to it, so they meet when `make run` loads them."""
from __future__ import annotations

DEMO_TOWNSHIP = "430382100"
DEMO_TOWNSHIP_NAME = "清溪镇"
