// Live countdown of each onboarding's 24 h sync window, refreshed every second.
(function () {
  function left(deadline) {
    var ms = Date.parse(deadline) - Date.now();
    if (isNaN(ms)) { return null; }
    if (ms <= 0) { return "window closed"; }
    var s = Math.floor(ms / 1000);
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    function two(n) { return (n < 10 ? "0" : "") + n; }
    return h + ":" + two(m) + ":" + two(r) + " left";
  }
  function tick() {
    var clocks = document.querySelectorAll("time.countdown[data-deadline]");
    for (var i = 0; i < clocks.length; i++) {
      var text = left(clocks[i].getAttribute("data-deadline"));
      if (text !== null) {
        clocks[i].textContent = text;
        clocks[i].classList.toggle("closed", text === "window closed");
      }
    }
  }
  document.addEventListener("DOMContentLoaded", function () { tick(); setInterval(tick, 1000); });
})();
