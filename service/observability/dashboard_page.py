"""optuna-dashboard's page as the service serves it: its script under the mount, the API shim,
and the write controls hidden with the reason shown.

The mount is read-only (the service answers optuna-dashboard's writes with a 405), so the page
does not offer them: a style sheet hides the buttons that would create, rename or delete a
study, edit a note, fail or skip a trial or change artifacts (found by their ARIA labels and
Material icons, which the pinned optuna-dashboard 0.21 renders), and a note on the page says
why and where studies change instead. The page's Content-Security-Policy allows inline styles.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

PREFIX = "/dashboard"
SHIM_PATH = "/hpo-api-prefix.js"
SHIM = b"""// optuna-dashboard calls its API at /api/...; here it is mounted under /dashboard.
(function () {
  var fetch = window.fetch.bind(window);
  window.fetch = function (input, init) {
    if (typeof input === "string" && input.indexOf("/api/") === 0) input = "/dashboard" + input;
    return fetch(input, init);
  };
})();
"""
READ_ONLY_REASON = (
    "Read-only here: studies are created, cancelled and deleted through the hpo-service API "
    "(POST /studies, POST /studies/ID/cancel, DELETE /studies/ID) or the hpo CLI, so "
    "create, rename, delete, notes and telling trials are not offered."
)
_WRITE_CONTROLS = (
    'button[aria-label="rename study"]',
    'button[aria-label="delete study"]',
    'button[aria-label="delete artifact"]',
    'button[aria-label="skip trial"]',
    'button:has(svg[data-testid="AddBoxIcon"])',  # "Create" (a new study)
    'button:has(svg[data-testid="EditIcon"])',  # a study's or a trial's note
    'button:has(svg[data-testid="StopCircleIcon"])',  # "Fail Trial"
    'button:has(svg[data-testid="UploadFileIcon"])',  # artifact upload
)
_STYLE = (
    "<style>\n"
    f"      {', '.join(_WRITE_CONTROLS)} {{ display: none !important; }}\n"
    "      #hpo-read-only { position: fixed; bottom: 0; right: 0; z-index: 2000; max-width: 40em;"
    " padding: 4px 10px; font: 12px sans-serif; color: #333; background: #fff8e1;"
    " border: 1px solid #e0c060; border-radius: 4px 0 0 0; }\n"
    "    </style>\n"
).encode()
_NOTE = f'<div id="hpo-read-only" role="note">{READ_ONLY_REASON}</div>\n'.encode()


def rewrite_page(html: bytes) -> bytes:
    """optuna-dashboard's page with its script under the mount, the API shim, the read-only
    style and note."""
    script = b'<script defer src="/static/'
    if script not in html:
        log.warning("optuna-dashboard's page has no %s: not rewritten", script.decode())
    html = html.replace(
        script,
        b'<script src="' + PREFIX.encode() + SHIM_PATH.encode() + b'"></script>\n    '
        b'<script defer src="' + PREFIX.encode() + b"/static/",
    )
    html = html.replace(b"</head>", b"    " + _STYLE + b"</head>", 1)
    return html.replace(b"</body>", _NOTE + b"</body>", 1)
