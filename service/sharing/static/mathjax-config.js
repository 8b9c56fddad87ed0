// MathJax 2 settings for Titan reports (as nbconvert's lab template sets them), loaded as a file
// so that report pages need no inline script.
// Fonts: jupyter-server-mathjax ships only the STIX-Web web fonts (as the classic notebook used
// them), not MathJax's TeX ones; the HTML-CSS output is told to use STIX-Web, and the fast preview
// (CommonHTML, which only knows the TeX fonts) is off, so no page asks for a font that is not there.
window.MathJax = {
  TeX: {equationNumbers: {autoNumber: "AMS", useLabelIds: true}},
  tex2jax: {inlineMath: [["$", "$"], ["\\(", "\\)"]], displayMath: [["$$", "$$"], ["\\[", "\\]"]],
            processEscapes: true, processEnvironments: true},
  displayAlign: "center",
  messageStyle: "none",
  CommonHTML: {linebreaks: {automatic: true}},
  "HTML-CSS": {availableFonts: [], preferredFont: null, webFont: "STIX-Web", imageFont: null,
               linebreaks: {automatic: true}},
  "fast-preview": {disabled: true},
  menuSettings: {zoom: "None"},
  showMathMenu: false
};
