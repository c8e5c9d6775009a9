"""The web UI: server-rendered pages to look at runs, steps, artifacts and lineage.

Mounted under ``/ui`` by ``pipeledger server`` (:func:`pipeledger.server.app.create_app`) and
served for one person's local store by ``pipeledger ui`` (127.0.0.1 only). Pages are Jinja2
templates rendered on the server; they work without JavaScript. Small scripts of our own (in
``static/``) only add live updates and interactions. No third-party JavaScript or CSS, no CDN,
no build step: everything here ships as package data and works offline.

Layout conventions (follow them when adding a page):

* **URL scheme.** ``/ui/`` redirects to ``/ui/runs``. ``/ui/runs`` (the runs table),
  ``/ui/runs/{run}`` (a run, by name or id), ``/ui/steps/{step_id}`` (a step run),
  ``/ui/artifacts/{artifact_id}`` (an artifact), ``/ui/compare?runs=A&runs=B`` (2-10 runs).
  JSON for scripts lives under ``/ui/api/...`` (e.g. ``/ui/api/runs/live?ids=..``). Every piece
  of view state (filter, sort, page token, chosen columns, log page) is a query parameter, so a
  link reproduces the view; build links with :func:`pipeledger.ui.app.url_with` (it keeps the
  other parameters). Static files: ``/ui/static/<file>``.
* **A page module** is ``pipeledger/ui/<noun>_page.py`` holding ``router = APIRouter()``; each
  route takes ``reader: UiReader = Depends(ui_reader)`` and returns
  ``render(request, "<noun>.html", {...})``. Add the module's name to
  :data:`pipeledger.ui.app.PAGE_MODULES`; :func:`pipeledger.ui.app.ui_router` includes it under
  the ``/ui`` prefix. Route handlers are plain ``def`` (FastAPI runs them in its thread pool:
  store reads block).
* **Access.** Every UI route reads the store only through the one dependency
  :func:`pipeledger.ui.app.ui_reader` (it returns a :class:`~pipeledger.ui.app.UiReader` holding
  a :class:`pipeledger.Client`). Authentication, when it lands, checks the session there and
  nowhere else; a page never opens a store or a stack itself.
* **Templates** (``templates/``) extend ``base.html`` and fill its blocks: ``title`` (the
  ``<title>`` text), ``heading`` (the ``<h1>``), ``crumbs`` (breadcrumb links after "Runs"),
  ``content`` (the ``<main>`` body) and ``scripts`` (``<script>`` tags of the page's own
  scripts, loaded with ``defer``). Shared macros are in ``macros.html`` (``status_badge``,
  ``kv_table``, ``json_value``, ``artifact_link``, ``run_link``, ``step_link``).
  Autoescaping is on: never mark user-supplied text ``|safe``; the only ``|safe`` values are
  SVG pictures we generate ourselves with every label escaped (Graphviz output, the Gantt chart).
* **Bounded reads.** A page reads a bounded amount whatever the store's size: one page of runs
  (``Client.search_runs``), one run's steps, one step's logs by byte ranges
  (:mod:`pipeledger.ui.logs`), previews through the artifact store's bounded ``preview``.
* **Accessibility.** Semantic HTML (``<main>``, ``<nav>``, ``<table>`` with ``<th scope>``),
  every form field labelled, links and buttons reachable with the keyboard (visible focus), colour
  never the only carrier of a status (badges show the word).
"""

from pipeledger.ui.app import UiReader, mount_ui, ui_reader, ui_router

__all__ = ["UiReader", "mount_ui", "ui_reader", "ui_router"]
