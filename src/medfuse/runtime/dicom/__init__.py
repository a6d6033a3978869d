"""DICOM ingestion: discovery of studies, the grayscale pixel pipeline, volumes."""
