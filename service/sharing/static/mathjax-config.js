// MathJax 2 settings for Titan reports (as nbconvert's lab template sets them), loaded as a file
// so that report pages need no inline script.
window.MathJax = {
  TeX: {equationNumbers: {autoNumber: "AMS", useLabelIds: true}},
  tex2jax: {inlineMath: [["$", "$"], ["\\(", "\\)"]], displayMath: [["$$", "$$"], ["\\[", "\\]"]],
            processEscapes: true, processEnvironments: true},
  displayAlign: "center",
  messageStyle: "none",
  CommonHTML: {linebreaks: {automatic: true}},
  menuSettings: {zoom: "None"},
  showMathMenu: false
};
