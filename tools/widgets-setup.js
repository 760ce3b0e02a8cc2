// Loaded after require.js and before embed-amd.js (nb_ipywidgets_js in _config.yml);
// tools/vendor_assets.py copies it into _vendor/widgets/ beside them.
(function () {
  // The modules bundled in embed-amd.js ("@jupyter-widgets/base", ".../controls",
  // ".../html-manager", ".../html-manager/dist/libembed-amd") load their icon fonts from the
  // folder of their module URL, which require.js derives from the module name relative to the
  // page: folders that do not exist. Map both name prefixes to the folder of this script, where
  // tools/vendor_assets.py puts the fonts.
  var here = document.currentScript.src.replace(/\/[^/]*$/, "");
  window.require.config({
    paths: { "@jupyter-widgets": here, "@jupyter-widgets/html-manager/dist": here },
  });

  // The widget manager typesets labels with MathJax 2's API, MathJax.Hub.Queue(["Typeset", ...]),
  // which MathJax 3 lacks: every page with widgets and math threw "Cannot read properties of
  // undefined (reading 'Queue')". Give MathJax 3 that one call, once it has loaded (deferred
  // scripts run before DOMContentLoaded; the widgets render on the load event).
  document.addEventListener("DOMContentLoaded", function () {
    var mj = window.MathJax;
    if (!mj || mj.Hub || !mj.startup) return;
    mj.Hub = {
      Queue: function (job) {
        var element = job && job[2];
        mj.startup.promise.then(function () {
          return mj.typesetPromise(element ? [element] : undefined);
        });
      },
    };
  });
})();
