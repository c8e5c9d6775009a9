// The lineage explorer without reloads: a click on a node or a control link fetches the same
// state's fragment (/ui/artifacts/ID/lineage?...) and swaps it in; the address bar follows, so a
// reload or a shared link shows the same view. Without this script the links load the whole page.
"use strict";
(function () {
  function fragmentUrl(box, href) {
    var url = new URL(href, window.location.href);
    var page = box.getAttribute("data-page");
    if (url.pathname !== page) return null;
    return box.getAttribute("data-fragment") + url.search;
  }

  function load(box, href, push, focusId) {
    var target = fragmentUrl(box, href);
    if (target === null) { window.location.href = href; return; }
    box.setAttribute("aria-busy", "true");
    fetch(target, { headers: { "Accept": "text/html" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error(response.status + " " + response.statusText);
        return response.text();
      })
      .then(function (html) {
        var holder = document.createElement("div");
        holder.innerHTML = html;  // our own server's escaped HTML (no script runs from innerHTML)
        var fresh = holder.querySelector("#lineage-explorer");
        if (fresh === null) throw new Error("no explorer in the answer");
        box.replaceWith(fresh);
        if (push) window.history.pushState({ explorer: true }, "", href);
        // keep the keyboard where it was: on the same node, else on the explorer's status line
        var again = focusId ? fresh.querySelector('a.node[data-id="' + CSS.escape(focusId) + '"]') : null;
        var status = fresh.querySelector(".explorer-status");
        if (again !== null) again.focus({ preventScroll: true });
        else if (status !== null) status.focus({ preventScroll: true });
      })
      .catch(function () { window.location.href = href; });
  }

  document.addEventListener("click", function (event) {
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    var box = document.getElementById("lineage-explorer");
    if (box === null) return;
    var link = event.target.closest ? event.target.closest("a") : null;
    if (link === null || !box.contains(link)) return;
    var isNode = link.classList.contains("node") || link.hasAttribute("data-explore");
    if (!isNode) return;
    var href = link.getAttribute("href") || link.getAttribute("xlink:href");
    if (!href) return;
    event.preventDefault();
    load(box, href, true, link.getAttribute("data-id"));
  });

  window.addEventListener("popstate", function () {
    var box = document.getElementById("lineage-explorer");
    if (box !== null) load(box, window.location.href, false, null);
  });
})();
