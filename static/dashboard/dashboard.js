// The few behaviours of the dashboard that htmx attributes cannot express under a strict CSP
// (no inline scripts, no hx-on, no eval): live refreshes that pause when nobody can see them,
// the teammates' row editors, focus after a save, and a word when the server is unreachable.
// Every text shown comes from the server, already translated.
(function () {
  "use strict";

  // Live refreshes --------------------------------------------------------------------------
  // A [data-live-poll] element refreshes itself with htmx's "every Ns" trigger. Each tick is
  // cancelled here before it leaves while the tab is hidden or the queue is off screen, so it
  // costs Allo nothing; htmx's timer keeps running and the next tick on screen goes through.

  function isOnScreen(elt) {
    if (!elt.isConnected || elt.closest("[hidden]")) {
      return false;
    }
    var box = (elt.closest("[data-live-region]") || elt).getBoundingClientRect();
    return box.width > 0 && box.bottom > 0 && box.top < window.innerHeight;
  }

  function mayRefresh(elt) {
    return (
      document.visibilityState === "visible" &&
      !elt.hasAttribute("data-live-stopped") &&
      isOnScreen(elt)
    );
  }

  // Back on the tab, or an editor opened again: refresh at once rather than at the next tick.
  function resumeLive(root) {
    root.querySelectorAll("[data-live-poll]").forEach(function (elt) {
      if (mayRefresh(elt)) {
        window.htmx.trigger(elt, "live:resume");
      }
    });
  }

  // A refresh that left before a save (or any redraw of the card) may answer after it: its
  // out-of-band parts would put back what the page showed before. A save aborts a refresh in
  // flight (hx-sync on the card); an answer that still comes for a refresh element no longer
  // on the page is dropped here. htmx fires that answer's events on the element itself, which,
  // detached, no longer passes them up to the document: the listener sits on the element.

  function dropIfGone(event) {
    var elt = event.detail.elt;
    if (elt && !elt.isConnected) {
      event.detail.shouldSwap = false;
    }
  }

  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    if (elt.hasAttribute("data-live-poll") && !elt.dashboardDropIfGone) {
      elt.dashboardDropIfGone = true;
      elt.addEventListener("htmx:beforeSwap", dropIfGone);
    }
  });
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (event.detail.elt && event.detail.elt.hasAttribute("data-live-poll")) {
      dropIfGone(event);
    }
  });

  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") {
      resumeLive(document);
    }
  });

  // The teammates' row editors --------------------------------------------------------------
  // "Edit queue" loads the teammate's queue card into the row below it the first time; after
  // that it only shows and hides the row, so nothing typed in the form is lost.

  function editorRow(toggle) {
    return document.getElementById(toggle.getAttribute("aria-controls"));
  }

  function setExpanded(toggle, expanded) {
    var row = editorRow(toggle);
    toggle.setAttribute("aria-expanded", expanded ? "true" : "false");
    if (row) {
      row.hidden = !expanded;
    }
  }

  document.addEventListener("htmx:confirm", function (event) {
    var elt = event.detail.elt;
    if (elt.hasAttribute("data-live-poll")) {
      if (!mayRefresh(elt)) {
        event.preventDefault();
      }
      return;
    }
    if (!elt.hasAttribute("data-editor-toggle")) {
      return;
    }
    var row = editorRow(elt);
    if (elt.getAttribute("aria-expanded") === "true") {
      event.preventDefault();
      setExpanded(elt, false);
    } else if (row && row.querySelector(".queue-card")) {
      event.preventDefault();
      setExpanded(elt, true);
      resumeLive(row);
    } else {
      setExpanded(elt, true);
    }
  });

  // Answers the server refused (a 4xx or 5xx, not Allo's trouble, which comes back in words).
  // htmx-config lets htmx swap them: the server's own are a fragment for #request-trouble
  // (dashboard/errorpages.py), so what was on the page, a half-typed form say, stays. Any other
  // (a proxy's error page) is not swapped anywhere: a generic word is shown instead. A live
  // refresh refused outright stops asking, quietly.

  function isOurTrouble(xhr) {
    return xhr && xhr.getResponseHeader("HX-Retarget") === "#request-trouble";
  }

  // With DEBUG on (the demo), django-htmx's helper shows any 4xx or 5xx answer as a whole page,
  // for Django's error pages. Ours are words for #request-trouble: this listener, in the capture
  // phase, runs before the helper's and keeps them from it (htmx itself goes on).
  document.addEventListener(
    "htmx:beforeOnLoad",
    function (event) {
      if (isOurTrouble(event.detail.xhr)) {
        event.stopPropagation();
      }
    },
    true
  );

  document.addEventListener("htmx:beforeSwap", function (event) {
    var detail = event.detail;
    if (!detail.xhr || detail.xhr.status < 400) {
      return;
    }
    if (detail.elt.hasAttribute("data-live-poll") || !isOurTrouble(detail.xhr)) {
      detail.shouldSwap = false;
    }
  });

  document.addEventListener("htmx:responseError", function (event) {
    var elt = event.detail.elt;
    if (elt.hasAttribute("data-live-poll")) {
      elt.setAttribute("data-live-stopped", "");
    } else if (!isOurTrouble(event.detail.xhr)) {
      showGenericTrouble();
    }
  });

  // Busy state and focus --------------------------------------------------------------------

  var focusBeforeRequest = null;

  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    if (elt.hasAttribute("data-live-poll")) {
      return;
    }
    hideTrouble();
    var target = event.detail.target;
    if (target) {
      target.setAttribute("aria-busy", "true");
      // Remembered: an answer may be put elsewhere (HX-Retarget) and say so in detail.target.
      if (event.detail.xhr) {
        event.detail.xhr.dashboardBusy = target;
      }
    }
    var active = document.activeElement;
    focusBeforeRequest = active && elt.contains(active) ? active : null;
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var xhr = event.detail.xhr;
    [event.detail.target, xhr && xhr.dashboardBusy].forEach(function (target) {
      if (target) {
        target.removeAttribute("aria-busy");
      }
    });
    // A control disabled while its request ran may have lost the keyboard focus: give it back
    // if nothing else took it (a swapped-in message takes it below).
    var previous = focusBeforeRequest;
    focusBeforeRequest = null;
    if (previous) {
      window.setTimeout(function () {
        var active = document.activeElement;
        if (active && active !== document.body) {
          return;
        }
        // A control redrawn by its own request (the pager's links) is found again by its id.
        var again = previous.isConnected ? previous : previous.id && document.getElementById(previous.id);
        if (again && !again.disabled) {
          again.focus();
        }
      }, 0);
    }
  });

  // After a save, the card says what happened: move the focus there (a field in error first),
  // so that a keyboard or screen reader user lands on the outcome. Live refreshes never carry
  // such an element, so they never move the focus.
  document.addEventListener("htmx:afterSettle", function (event) {
    var root = event.target;
    if (!(root instanceof Element)) {
      return;
    }
    var invalid = root.querySelector("[aria-invalid='true']");
    var message = root.matches("[data-autofocus]") ? root : root.querySelector("[data-autofocus]");
    var destination = invalid || message;
    if (destination) {
      destination.focus();
    }
  });

  // Photos that cannot load ----------------------------------------------------------------
  // A teammate's photo sits on top of their initials; one that fails to load is hidden so the
  // initials show (no onerror attributes: the CSP forbids inline handlers).

  function hideIfBroken(img) {
    if (img.complete && img.naturalWidth === 0) {
      img.hidden = true;
    }
  }

  document.addEventListener(
    "error",
    function (event) {
      var elt = event.target;
      if (elt instanceof HTMLImageElement && elt.classList.contains("avatar__photo")) {
        elt.hidden = true;
      }
    },
    true
  );

  function checkPhotos(root) {
    root.querySelectorAll("img.avatar__photo").forEach(hideIfBroken);
  }

  document.addEventListener("DOMContentLoaded", function () {
    checkPhotos(document);
  });
  document.addEventListener("htmx:afterSettle", function (event) {
    if (event.target instanceof Element) {
      checkPhotos(event.target);
    }
  });

  // The server itself out of reach, or refusing ---------------------------------------------

  function showTrouble() {
    var box = document.getElementById("connection-trouble");
    if (box) {
      box.hidden = false;
    }
  }

  function showGenericTrouble() {
    var box = document.getElementById("request-trouble");
    if (box) {
      box.textContent = box.getAttribute("data-generic") || "";
      box.hidden = false;
    }
  }

  function hideTrouble() {
    ["connection-trouble", "request-trouble"].forEach(function (id) {
      var box = document.getElementById(id);
      if (box) {
        box.hidden = true;
      }
    });
  }

  // Announcements ---------------------------------------------------------------------------
  // A status region inside a fragment is replaced along with it, and screen readers do not
  // reliably read a live region that has just appeared. What a swapped-in [data-announce]
  // element says is copied into #announcer, which never leaves the page, unless the focus was
  // just moved onto it (above): a screen reader reads it then, and once is enough.

  var announceTimer = null;

  function announce(text) {
    var region = document.getElementById("announcer");
    if (!region || !text) {
      return;
    }
    // Emptied first, so that the same words said twice are heard twice.
    region.textContent = "";
    window.clearTimeout(announceTimer);
    announceTimer = window.setTimeout(function () {
      region.textContent = text;
    }, 100);
  }

  document.addEventListener("htmx:afterSettle", function (event) {
    var root = event.target;
    if (!(root instanceof Element)) {
      return;
    }
    var said = root.matches("[data-announce]") ? root : root.querySelector("[data-announce]");
    if (said && !said.contains(document.activeElement)) {
      announce(said.textContent.replace(/\s+/g, " ").trim());
    }
  });

  document.addEventListener("htmx:sendError", function (event) {
    if (!event.detail.elt.hasAttribute("data-live-poll")) {
      showTrouble();
    }
  });
})();
