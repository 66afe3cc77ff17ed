"""Export to every deployment format, each file verified in its own runtime
(``run_export``), and prediction with what was exported (``exported``)."""

from portaclass.export.exported import ExportedModel, load_exported
from portaclass.export.formats import FORMATS
from portaclass.export.run_export import ExportCheckError, ExportResult, export_model, verify_export

__all__ = ["FORMATS", "ExportCheckError", "ExportResult", "ExportedModel", "export_model",
           "load_exported", "verify_export"]
