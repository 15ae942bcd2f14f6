"""The one style sheet of the server's own pages, inline in each page, and the CSP hash that allows it.

Pages carry no script and load nothing: the Content-Security-Policy (see `security_headers`) allows this
exact `<style>` element by its hash and nothing else, so an injected style or script would not apply.
"""

from __future__ import annotations

import base64
import hashlib

CSS = "body{font-family:sans-serif;max-width:32em;margin:3em auto;padding:0 1em;line-height:1.5}"
STYLE_ELEMENT = f"<style>{CSS}</style>"
CSP_SOURCE = "'sha256-" + base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode() + "'"
