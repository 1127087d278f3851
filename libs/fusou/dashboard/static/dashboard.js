// Draws the figures the page carries (built by fusou.dashboard.figures) with plotly.js, then
// reloads the page every data-refresh seconds (0: never).
"use strict";
(function () {
  const figures = JSON.parse(document.getElementById("figures").textContent);
  const drawn = Object.entries(figures).map(([id, figure]) =>
    Plotly.newPlot(document.getElementById(id), figure.data, figure.layout, {
      displaylogo: false,
      responsive: true,
    })
  );
  Promise.all(drawn).then(() => {
    document.body.dataset.plotted = String(drawn.length);
  });
  const refresh = Number(document.body.dataset.refresh || "0");
  if (refresh > 0) {
    setTimeout(() => window.location.reload(), refresh * 1000);
  }
})();
