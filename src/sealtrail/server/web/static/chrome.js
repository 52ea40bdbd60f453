// The frame of every page: switching logs keeps the user on the same kind of page.
const select = document.getElementById("log-switch");
if (select) {
  select.addEventListener("change", () => {
    const from = encodeURIComponent(select.dataset.current || "");
    const to = encodeURIComponent(select.value);
    const path = location.pathname;
    const marker = `/ui/logs/${from}/`;
    if (path.startsWith(marker)) {
      const rest = path.slice(marker.length).split("/")[0];
      location.assign(`/ui/logs/${to}/${rest}`);
    } else {
      location.assign(`${path}?log=${to}`);
    }
  });
}
