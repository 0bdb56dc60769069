// The print button of the recovery-code page (a file, not an inline script: the CSP allows only 'self').
document.addEventListener("click", function (event) {
  if (event.target.closest("[data-print]")) {
    window.print();
  }
});
