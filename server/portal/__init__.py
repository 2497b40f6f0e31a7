"""The portal (issue 16): server-rendered pages for people on the admin port at `/`.

Every page is drawn from admin API calls made in-process (`calls.py` → `server.api.routing.execute`),
so a page can show and do exactly what its administrator's API token may: one place decides
(ACC-7), audits (LOG-1) and validates. The portal adds what browsers need: a session cookie,
CSRF tokens, security headers, HTML.
"""
