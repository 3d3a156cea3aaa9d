"""Credit assessment pipeline: affordability features, PD and limit models, policy, registry, scoring."""

__version__ = "0.3.5"

import warnings

# pandera imports pyspark's pandas API when pyspark is installed (the Spark extra), which warns
# about pandas 3 on every start; the scoring path never uses pyspark.pandas.
warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
