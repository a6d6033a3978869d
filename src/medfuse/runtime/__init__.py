"""The lean runtime: DICOM reading, preprocessing into buffers, sessions and backends.

Imports only numpy, pydicom, opencv and onnxruntime (TensorRT only inside its backend).
"""
