"""HTML reports for operators: one self-contained page per `streamactors stress` run or log
summary, its charts inline SVG drawn by our own code (`svg`), the page around them (`page`), and
the bounded time series they are drawn from (`series`)."""
