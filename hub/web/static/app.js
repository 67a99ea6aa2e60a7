// A little plain JavaScript on top of pages that work without it.
"use strict";

document.addEventListener("click", async (event) => {
  // A receipt opens in place under its row; without JS the link opens the receipt page.
  const link = event.target.closest("a.receipt-link");
  if (link) {
    event.preventDefault();
    const row = link.closest("tr");
    const open = row.nextElementSibling;
    if (open && open.classList.contains("receipt-row")) {
      open.remove();
      link.setAttribute("aria-expanded", "false");
      return;
    }
    const response = await fetch(link.href + "?fragment=1", {credentials: "same-origin"});
    const holder = document.createElement("tr");
    holder.className = "receipt-row";
    const cell = document.createElement("td");
    cell.colSpan = row.children.length;
    cell.innerHTML = response.ok ? await response.text() : "<p class=\"flash error\">The receipt could not be loaded.</p>";
    holder.appendChild(cell);
    row.after(holder);
    link.setAttribute("aria-expanded", "true");
    return;
  }
  const copy = event.target.closest("button.copy");
  if (copy) {
    const input = document.querySelector(copy.dataset.copy);
    input.select();
    try {
      await navigator.clipboard.writeText(input.value);
      copy.textContent = "Copied";
    } catch (_) {
      document.execCommand("copy");  // older browsers, or no clipboard permission
      copy.textContent = "Copied";
    }
  }
});
