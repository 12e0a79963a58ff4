"""scikit-learn estimators over jmlp: ``MLPClassifier`` and ``MLPRegressor``, drop-ins for
``sklearn.neural_network``'s (scikit-learn 1.9's parameters, attributes, messages and rules).

They train through :func:`jmlp.fit` (the hand-written backward pass by default; row counts
padded to :mod:`jmlp.buckets` sizes, so the folds of a grid search share one training and one
prediction program) and pass scikit-learn's estimator checks (the list of checks left out is in
``tests/test_sklearn.py``)::

    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from jmlp.sklearn import MLPClassifier

    model = make_pipeline(StandardScaler(), MLPClassifier((64,), max_iter=50, random_state=0))
    model.fit(X_train, y_train).score(X_test, y_test)

``fit`` and ``partial_fit`` take ``sample_weight`` (``jmlp.fit``'s per-example weights). What
stays different is in docs/scikit-learn.md: float32 arithmetic, mainly.
"""

try:
    import sklearn  # noqa: F401
except ImportError as error:
    raise ImportError(
        'jmlp.sklearn needs scikit-learn >= 1.6: pip install "jmlp[experiments]"'
    ) from error

from jmlp.sklearn.estimators import MLPClassifier as MLPClassifier
from jmlp.sklearn.estimators import MLPRegressor as MLPRegressor
