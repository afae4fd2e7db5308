"""The page kit every service's pages share: one stylesheet, one small script and the category
pictures (``static/``), the page layout (``templates/base.html``), and the helpers that render a
page and serve the kit (``web.py``, the HTTP edge). Each service serves the kit under its own
prefix, so the one public address can send every path to exactly one service."""
