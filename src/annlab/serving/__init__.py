"""Using what was trained: load a model by path, run or registry URI; predict on new raw data;
promote a run's model in the MLflow Model Registry; export a TensorFlow SavedModel."""
