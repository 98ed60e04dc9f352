"""An NNPDF-style k-fold x replica fit of a structure function (see README.md).

Options (environment variables, read at import): ``HPSEARCH_PDF_STATISTIC`` (mean_chi2,
chi2_of_mean, mean_abs_chi2_minus_one), ``HPSEARCH_PDF_REPLICAS``, ``HPSEARCH_PDF_FOLDS``,
``HPSEARCH_QUICK=1``.
"""

from problems.pdf_kfold.model import problem, run

__all__ = ["problem", "run"]
