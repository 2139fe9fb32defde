"""The built website: every page is there, works offline, and publishes no solution.

The session fixture `site` (tests/conftest.py) runs `book/build.py` (incremental: unchanged
chapters come from the execution cache), then the tests read `_build/html`. The last test opens every page in headless Chromium
(Debian's `chromium`) over a local HTTP server, with a recording proxy that every non-local
request would reach, and checks that math is typeset, plotly figures are drawn and images load.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from functools import partial
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from conftest import INSTALL_HINT

from test_book import numbered_chapters, toc_documents

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "_build" / "html"
CHROMIUM = "/usr/bin/chromium"
NOT_PAGES = ("solutions", "exercises", "autograder", "tests", "dgm")
REMOTE = re.compile(r"^\s*(https?:)?//", re.I)
# Chromium's own service traffic (component updater, network time, sign-in), which some builds
# send despite --disable-background-networking. It is the browser's, not a page's: no page of
# this site can need these hosts, so the proxy check ignores exactly them and nothing else.
BROWSER_SERVICE_HOSTS = {
    "accounts.google.com", "update.googleapis.com", "clients1.google.com", "clients2.google.com",
    "redirector.gvt1.com", "optimizationguide-pa.googleapis.com", "content-autofill.googleapis.com",
    "safebrowsingohttpgateway.googleapis.com",
}


def page_of(document: str) -> Path:
    return SITE / f"{document}.html"


def html_files(site: Path) -> list[Path]:
    """Every HTML file of the site, the theme's template fragments in _static included."""
    return sorted(site.rglob("*.html"))


def pages(site: Path) -> list[Path]:
    """The site's pages (not the template fragments that themes copy into _static)."""
    return [p for p in html_files(site) if p.relative_to(site).parts[0] not in ("_static", "_sources")]


class Resources(HTMLParser):
    """Collects what a page makes the browser fetch: (tag, attribute, url), and inline CSS."""

    FETCHED = {"script": "src", "img": "src", "iframe": "src", "source": "src", "audio": "src",
               "video": "src", "embed": "src", "object": "data", "link": "href"}
    LINK_NAVIGATION = {"canonical", "alternate", "next", "prev", "index", "search", "author", "license"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.urls: list[tuple[str, str, str]] = []
        self.inline_css: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "style":
            self._in_style = True
        attr = self.FETCHED.get(tag)
        if attr and attrs.get(attr):
            if tag == "link" and set((attrs.get("rel") or "").lower().split()) <= self.LINK_NAVIGATION:
                return
            self.urls.append((tag, attr, attrs[attr]))
        if attrs.get("style"):
            self.inline_css.append(attrs["style"])

    def handle_endtag(self, tag):
        if tag == "style":
            self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.inline_css.append(data)


def resources(page: Path) -> Resources:
    parser = Resources()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def remote_css_urls(css: str) -> list[str]:
    found = re.findall(r"url\(\s*['\"]?([^'\")]+)", css) + re.findall(r"@import\s+['\"]([^'\"]+)", css)
    return [url for url in found if REMOTE.match(url)]


# --- files ---------------------------------------------------------------------------------


def test_every_toc_page_was_built(site):
    missing = [doc for doc in toc_documents() if not page_of(doc).is_file()]
    assert not missing, f"pages listed in _toc.yml but absent from _build/html: {missing}"
    assert (site / "index.html").is_file()


def test_no_page_fetches_from_the_network(site):
    offenders = []
    for page in html_files(site):
        parsed = resources(page)
        offenders += [f"{page.relative_to(site)}: <{t} {a}={u}>" for t, a, u in parsed.urls if REMOTE.match(u)]
        offenders += [f"{page.relative_to(site)}: inline CSS {u}" for u in remote_css_urls("\n".join(parsed.inline_css))]
    for css in sorted(site.rglob("*.css")):
        offenders += [f"{css.relative_to(site)}: {u}" for u in remote_css_urls(css.read_text(encoding="utf-8", errors="replace"))]
    assert not offenders, "scripts, styles, fonts and images must come from the site itself:\n" + "\n".join(offenders)


def test_every_local_asset_a_page_loads_exists(site):
    missing = []
    for page in pages(site):
        for tag, attr, url in resources(page).urls:
            if REMOTE.match(url) or url.startswith(("data:", "#", "mailto:")):
                continue
            target = (page.parent / unquote(urlsplit(url).path)).resolve()
            if not target.exists():
                missing.append(f"{page.relative_to(site)}: <{tag} {attr}={url}>")
    assert not missing, "pages load files the site does not have:\n" + "\n".join(missing)


def test_mathjax_and_plotly_are_served_by_the_site(site):
    mathjax = site / "_static" / "mathjax"
    assert (mathjax / "tex-chtml.js").is_file(), "offline MathJax missing (sphinx-mathjax-offline)"
    assert any((mathjax / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff")), "MathJax fonts missing"
    plotly_js = site / "_static" / "plotly" / "plotly.min.js"
    assert plotly_js.is_file() and plotly_js.stat().st_size > 1_000_000, "plotly.min.js missing (book/build.py)"
    for doc in toc_documents():
        text = page_of(doc).read_text(encoding="utf-8")
        scripts = [u for t, _, u in resources(page_of(doc)).urls if t == "script"]
        if 'class="math' in text:
            assert any("_static/mathjax/tex-chtml.js" in u for u in scripts), f"{doc}: math but no local MathJax"
        # plotly.js never in a page's head: the loader fetches it where a figure is (course_site.py)
        assert not any("plotly.min.js" in u for u in scripts), f"{doc}: plotly.min.js loaded in the head"
        loader = re.search(r'window\.dgmPlotly = window\.dgmPlotly \|\|.*?\}\)\("([^"]+)"\);', text, re.S)
        if "plotly-graph-div" in text:
            assert loader, f"{doc}: a plotly figure but no plotly loader"
            src = (page_of(doc).parent / loader.group(1)).resolve()
            assert src == plotly_js.resolve(), f"{doc}: the loader fetches {loader.group(1)}, not the site's plotly.js"
            drawn = re.findall(r'window\.dgmPlotly\("([^"]+)", function', text)
            divs = re.findall(r'<div id="([^"]+)" class="plotly-graph-div', text)
            assert drawn == divs, f"{doc}: figures {divs} but drawn through the loader: {drawn}"
        else:   # 4.8 MB a page without a figure has no use for
            assert not loader and "plotly.min.js" not in text, f"{doc}: names plotly.min.js but draws no figure"


def test_every_figure_has_a_description(site):
    """A figure's alt text says what it shows (the cell's ``mystnb.image.alt``), never its file path."""
    for doc in toc_documents():
        for tag in re.findall(r"<img [^>]*>", page_of(doc).read_text(encoding="utf-8")):
            alt = re.search(r'alt="([^"]*)"', tag)
            assert alt and len(alt.group(1)) >= 10, f"{doc}: an image without a description: {tag[:200]}"
            assert not re.search(r"\.(png|jpe?g|svg|gif)$", alt.group(1)), f"{doc}: a file path as alt text: {tag[:200]}"


def test_no_script_is_loaded_twice_on_a_page(site):
    """Jupyter Book added sphinx-thebe's inline set-up twice (a SyntaxError on every page)."""
    for doc in toc_documents():
        parser = Scripts()
        parser.feed(page_of(doc).read_text(encoding="utf-8"))
        repeated = sorted({s[:80] for s in parser.scripts if parser.scripts.count(s) > 1})
        assert not repeated, f"{doc}: scripts on the page twice: {repeated}"


def test_progress_bars_stay_in_the_notebook(site):
    """stderr (tqdm's progress bars) is not shown on the static page (nb_output_stderr: remove)."""
    for doc in toc_documents():
        text = page_of(doc).read_text(encoding="utf-8")
        assert "output stderr" not in text, f"{doc}: a stderr box on the page"
        assert not re.search(r"\d+%\|[^|\n]{0,80}\|", text), f"{doc}: a progress bar on the page"


class Scripts(HTMLParser):
    """Every script of a page: its src, or its inline text."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self._inline: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            src = dict(attrs).get("src")
            if src:
                self.scripts.append(src)
            elif dict(attrs).get("type", "text/javascript") in ("text/javascript", "module", ""):
                self._inline = []

    def handle_data(self, data):
        if self._inline is not None:
            self._inline.append(data)

    def handle_endtag(self, tag):
        if tag == "script" and self._inline is not None:
            self.scripts.append("".join(self._inline).strip())
            self._inline = None


def test_solutions_exercises_and_grading_never_become_pages(site):
    leaked = [p.relative_to(site) for p in site.rglob("*") if p.relative_to(site).parts[0] in NOT_PAGES]
    assert not leaked, f"rooms that must not be published are in the site: {leaked[:10]}"
    holders = []
    for path in site.rglob("*"):
        if path.is_file() and b"BEGIN SOLUTION" in path.read_bytes():
            holders.append(str(path.relative_to(site)))
    assert not holders, f"solution text published in: {holders}"


def test_each_chapter_offers_its_exercise_for_download(site):
    for stem in numbered_chapters():
        text = page_of(f"book/{stem}").read_text(encoding="utf-8")
        links = re.findall(r'<a[^>]*class="[^"]*\bdownload\b[^"]*"[^>]*href="([^"]+)"', text)
        links += re.findall(r'<a[^>]*href="([^"]+)"[^>]*class="[^"]*\bdownload\b', text)
        # {download} copies the file into _build/html/_downloads/<hash>/ (the theme's own
        # "download this page as .ipynb" link goes to _sources/ and does not count).
        wanted = [u for u in links if "_downloads/" in u and unquote(u).endswith(f"/{stem}.ipynb")]
        assert wanted, (
            f"book/{stem}.md must offer its exercise: "
            f"{{download}}`exercises/{stem}/{stem}.ipynb <../exercises/{stem}/{stem}.ipynb>`"
        )
        assert (page_of(f"book/{stem}").parent / unquote(wanted[0])).resolve().is_file()


def test_widgets_are_not_frozen_onto_pages(site):
    frozen = [str(p.relative_to(site)) for p in pages(site)
              if "application/vnd.jupyter.widget-view+json" in p.read_text(encoding="utf-8")]
    assert not frozen, (
        f"ipywidgets output on the static pages {frozen}: tag the cell `remove-output` and point to "
        "the live notebook; use a plotly slider (dgm.plotting.plotly_slider_figure) on the page"
    )


# --- in a browser ----------------------------------------------------------------------------

# Put first in <head> of every page the local server sends: records every script error.
ERRORS = """<script>window.__dgmErrors = [];
window.addEventListener("error", function (e) { window.__dgmErrors.push(String(e.message)); });</script>"""

# Appended to every page the local server sends: once the page has loaded and MathJax has
# typeset, it writes what it sees into <pre id="dgm-site-check">, which --dump-dom prints.
PROBE = """<script>
window.addEventListener("load", function () {
  var all = function (s) { return Array.prototype.slice.call(document.querySelectorAll(s)); };
  // plotly.js (4.8 MB) is fetched only when a figure comes near the window (course_site.py):
  // when the page has loaded, it must not have been requested if every figure is far below.
  var farBelow = all(".plotly-graph-div").every(function (d) {
    return d.getBoundingClientRect().top > window.innerHeight + 1000; });
  var fetchedEarly = farBelow && !!document.querySelector("script[src*='plotly.min.js']");
  var drawn = function (d) { return !!d.querySelector("svg.main-svg"); };
  // Headless Chromium's virtual time (--virtual-time-budget) advances whenever the page's main
  // thread is idle, whatever work is still under way off it (plotly.min.js, 4.8 MB, may be compiled
  // on a background thread). So each wait also holds the main thread for 50 ms of *real* time (a
  // synchronous request the local server answers late, WAIT_PATH), during which virtual time
  // stands still: a figure has at least 5 s of real time, not only of virtual time, to be drawn.
  var pause = function () {
    try { var x = new XMLHttpRequest(); x.open("GET", "/__wait__", false); x.send(); } catch (e) {}
  };
  // As a reader would: scroll to each figure in turn (plotly.js is fetched when one comes near)
  // and wait for it to be drawn (up to 100 waits of 100 ms virtual and 50 ms real time), then back
  // to the top. waits: how many waits each figure took.
  var waits = [];
  var scrolled = function () { return new Promise(function (done) {
    var figures = all(".plotly-graph-div"), i = 0, tries = 0;
    (function next() {
      if (i >= figures.length) { window.scrollTo(0, 0); done(); return; }
      if (tries === 0) { figures[i].scrollIntoView(); }
      if (drawn(figures[i]) || tries >= 100) { waits.push(tries); i += 1; tries = 0; }
      else { tries += 1; pause(); }
      setTimeout(next, 100);
    })();
  }); };
  var ready = (window.MathJax && MathJax.startup && MathJax.startup.promise) || Promise.resolve();
  ready.catch(function () {}).then(scrolled).then(function () { setTimeout(function () {
    var report = {
      mathjax: !!(window.MathJax && MathJax.startup),
      math: all(".math").length,
      untypeset: all(".math").filter(function (e) { return !e.querySelector("mjx-container"); }).length,
      texErrors: all("mjx-merror").map(function (e) { return e.textContent; }),
      plots: all(".plotly-graph-div").length,
      undrawn: all(".plotly-graph-div").filter(function (d) { return !drawn(d); })
                 .map(function (d) { return d.id; }),
      // why a figure is not drawn: plotly.js not requested, requested but not loaded, or the
      // loader's message in the figure's place (the fetch failed)
      undrawnWhy: all(".plotly-graph-div").filter(function (d) { return !drawn(d); })
                 .map(function (d) { return {id: d.id, requested: !!document.querySelector("script[src*='plotly.min.js']"),
                                             loaded: !!window.Plotly, text: (d.textContent || "").slice(0, 80)}; }),
      errors: window.__dgmErrors || [],
      fetchedEarly: fetchedEarly,
      // content the reader cannot see whole or scroll to: clipped by an ancestor that hides its
      // overflow, or past the window's edge with no scrolling box around it
      cut: all("mjx-container[display='true'], .cell_output, table, .plotly-graph-div").filter(function (e) {
        var r = e.getBoundingClientRect();
        if (r.width === 0) { return false; }
        for (var p = e.parentElement; p && p !== document.documentElement; p = p.parentElement) {
          var o = getComputedStyle(p).overflowX, b = p.getBoundingClientRect();
          if (o === "auto" || o === "scroll") { return false; }
          if ((o === "hidden" || o === "clip") && (r.right > b.right + 1 || r.left < b.left - 1)) { return true; }
        }
        return r.right > window.innerWidth + 1;
      }).map(function (e) { return e.tagName.toLowerCase() + ":" + (e.textContent || "").slice(0, 40); }),
      // display formulas wider than their column: none on a desktop (they are broken across
      // lines); on a phone they may scroll, and then must show that they do (course-site.css)
      wide: all("mjx-container[display='true']").filter(function (e) {
        var inner = e.firstElementChild;
        return inner && inner.getBoundingClientRect().width > e.getBoundingClientRect().width + 1;
      }).map(function (e) {
        var tex = (MathJax.startup.document.getMathItemsWithin(e)[0] || {}).math || e.textContent || "";
        return {tex: tex.trim().slice(0, 60), cue: getComputedStyle(e).backgroundAttachment.indexOf("local") >= 0};
      }),
      waits: waits,
      images: document.images.length,
      brokenImages: Array.prototype.slice.call(document.images)
                 .filter(function (i) { return !(i.complete && i.naturalWidth > 0); })
                 .map(function (i) { return i.getAttribute("src"); })
    };
    var out = document.createElement("pre");
    out.id = "dgm-site-check";
    out.textContent = JSON.stringify(report);
    document.body.appendChild(out);
    if (window.parent !== window) { window.parent.postMessage(out.textContent, "*"); }
  }, 1000); });
});
</script>"""

WAIT_PATH = "/__wait__"

# Headless Chromium draws no window narrower than 500 px: a phone's 390 px is a frame of that width
# (its own viewport, so media queries and the figures' narrow-screen layout apply) inside a
# wrapper page, which copies the framed page's report into its own DOM.
PHONE_WIDTH = 390
PHONE = """<!doctype html><html><body style="margin:0">
<iframe src="{src}" style="width:{width}px;height:4000px;border:0"></iframe>
<script>window.addEventListener("message", function (e) {{
  var out = document.createElement("pre"); out.id = "dgm-site-check"; out.textContent = e.data;
  document.body.appendChild(out);
}});</script></body></html>"""

# A page that does what no page may do: load an image over http and a script from a CDN.
CANARY = (b'<!doctype html><html><body><img src="http://example.invalid/canary.png">'
          b'<script src="https://cdn.jsdelivr.net/npm/canary@1/canary.js"></script></body></html>')


class SiteHandler(SimpleHTTPRequestHandler):
    """Serves _build/html, appends PROBE to pages and records every (path, status)."""

    def do_GET(self):
        path = urlsplit(self.path).path
        if path == "/__canary__.html":
            return self._send(CANARY)
        if path == WAIT_PATH:   # PROBE's pause: hold the page's main thread for 50 ms of real time
            time.sleep(0.05)
            return self._send(b"")
        if path.startswith("/__phone__/"):
            src = "/" + path[len("/__phone__/"):]
            return self._send(PHONE.format(src=html.escape(src, quote=True), width=PHONE_WIDTH).encode("utf-8"))
        if path.endswith(".html"):
            file = Path(self.translate_path(path))
            if file.is_file():
                body = file.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>", 1)
                body = re.sub(r"<head>", "<head>" + ERRORS.replace("\\", "\\\\"), body, count=1)
                return self._send(body.encode("utf-8"))
        return super().do_GET()

    def _send(self, body: bytes):
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_request(self, code="-", size="-"):
        self.server.requests.append((urlsplit(self.path).path, int(code)))

    def log_message(self, *args):
        pass


class RecordingProxy(BaseHTTPRequestHandler):
    """The browser's proxy: any request that reaches it was leaving the machine. Refuses all."""

    def _refuse(self):
        host = self.path.rsplit(":", 1)[0] if self.command == "CONNECT" else urlsplit(self.path).hostname
        if host not in BROWSER_SERVICE_HOSTS:
            self.server.requests.append(f"{self.command} {self.path}")
        self.send_response(403)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_HEAD = do_PUT = do_OPTIONS = do_CONNECT = _refuse

    def log_message(self, *args):
        pass


@contextmanager
def serving(handler):
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)  # port 0: a free port
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def dump_dom(url: str, proxy_port: int, profile: str) -> str:
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
        "--disable-default-apps", "--disable-domain-reliability", "--no-pings",
        "--disable-client-side-phishing-detection", "--disable-breakpad", "--metrics-recording-only",
        "--disable-features=OptimizationHints,OptimizationGuideModelDownloading,MediaRouter,"
        "NetworkTimeServiceQuerying,AutofillServerCommunication,Translate",
        f"--user-data-dir={profile}",
        # Everything except loopback (bypassed by default) goes to the recording proxy.
        f"--proxy-server=http://127.0.0.1:{proxy_port}",
        "--window-size=1280,2000", "--virtual-time-budget=60000", "--dump-dom", url,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"chromium failed on {url}:\n{result.stderr[-3000:]}"
    return result.stdout


def probe_report(dom: str, url: str) -> dict:
    found = re.search(r'<pre id="dgm-site-check">(.*?)</pre>', dom, re.S)
    assert found, f"{url}: the page never finished loading (no probe report in the DOM)"
    return json.loads(html.unescape(found.group(1)))


def test_pages_render_offline_in_chromium(site):
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} not found: the site's browser checks need it; {INSTALL_HINT}", pytrace=False)
    with tempfile.TemporaryDirectory() as profile, serving(RecordingProxy) as proxy, \
            serving(partial(SiteHandler, directory=str(site))) as server:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        proxy_port = proxy.server_address[1]

        # The detector works: both of the canary's remote requests must reach the proxy.
        dump_dom(f"{base}/__canary__.html", proxy_port, profile)
        seen = " ".join(proxy.requests)
        assert "example.invalid" in seen and "cdn.jsdelivr.net" in seen, (
            f"the recording proxy saw no request from the canary page ({proxy.requests}); "
            "outbound requests would go unnoticed"
        )
        proxy.requests.clear()

        problems = []
        for doc, width in [(d, w) for d in toc_documents() for w in (1280, PHONE_WIDTH)]:   # a desktop, a phone
            url = f"{base}/{doc}.html" if width == 1280 else f"{base}/__phone__/{doc}.html"
            report = probe_report(dump_dom(url, proxy_port, profile), url)
            if report["undrawn"]:
                # Seen once in many runs on a loaded machine (Chapter 8, its one figure): a figure
                # left undrawn. A page whose figures draw when it is loaded again has no broken
                # figure; the first attempt is printed so that a recurring cause can be found.
                print(f"{doc} ({width} px): figures not drawn on the first load, loading again: {report['undrawnWhy']}")
                report = probe_report(dump_dom(url, proxy_port, profile), url)
            if report["errors"]:
                problems.append(f"{doc} ({width} px): script errors {report['errors']}")
            if report["cut"]:
                problems.append(f"{doc} ({width} px): cut off at the window's edge: {report['cut'][:5]}")
            if width != 1280:
                unmarked = [w["tex"] for w in report["wide"] if not w["cue"]]
                if unmarked:
                    problems.append(f"{doc} ({width} px): formulas scroll without the edge shadows: {unmarked[:5]}")
                print(f"{doc} at {width} px: {len(report['wide'])} display formulas scroll sideways")
                continue
            if report["wide"]:
                problems.append(f"{doc}: display formulas wider than the column at 1280 px (break them across "
                                f"lines with aligned): {[w['tex'] for w in report['wide']]}")
            if report["math"] and not report["mathjax"]:
                problems.append(f"{doc}: MathJax did not load")
            if report["untypeset"]:
                problems.append(f"{doc}: {report['untypeset']} of {report['math']} math elements not typeset")
            if report["texErrors"]:
                problems.append(f"{doc}: TeX errors {report['texErrors']}")
            if report["fetchedEarly"]:
                problems.append(f"{doc}: plotly.min.js fetched at load although every figure is far below")
            if report["undrawn"]:
                problems.append(f"{doc}: plotly figures not drawn (twice): {report['undrawnWhy']}")
            if report["brokenImages"]:
                problems.append(f"{doc}: images that did not load: {report['brokenImages']}")
            print(f"{doc}: {report['math']} math, {report['plots']} plotly figures (waits until drawn: {report['waits']}), {report['images']} images")

        failed = sorted({(p, s) for p, s in server.requests if s >= 400 and p != "/favicon.ico"})
        if failed:
            problems.append(f"the pages requested files the site does not have: {failed}")
        if proxy.requests:
            problems.append(f"requests left the machine: {sorted(set(proxy.requests))}")
        assert not problems, "\n".join(problems)


def test_a_feedback_page_fits_a_phone(tmp_path):
    """A student reads their feedback on a phone too: at 390 px (and 1280 px) nothing of the page
    (the points table above all) is cut off at the window's edge. The page forbids every script
    (its content-security policy); this test's copy drops the policy so the probe can run."""
    from autograder.feedback import feedback_html
    from test_reports import make_results, sub_of

    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} not found: the site's browser checks need it; {INSTALL_HINT}", pytrace=False)
    results = make_results()
    page = feedback_html(results, sub_of(results, "alice"))
    page, policies = re.subn(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page)
    assert policies == 1, "the feedback page lost its content-security policy"
    (tmp_path / "feedback.html").write_text(page, encoding="utf-8")
    with tempfile.TemporaryDirectory() as profile, serving(RecordingProxy) as proxy, \
            serving(partial(SiteHandler, directory=str(tmp_path))) as server:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        problems = []
        for url, width in [(f"{base}/feedback.html", 1280), (f"{base}/__phone__/feedback.html", PHONE_WIDTH)]:
            report = probe_report(dump_dom(url, proxy.server_address[1], profile), url)
            if report["cut"] or report["errors"]:
                problems.append(f"{width} px: cut off {report['cut'][:5]}, script errors {report['errors']}")
        assert not problems, "the feedback page does not fit:\n" + "\n".join(problems)
