from .multitask_data_preprocessor import MultiTaskDataPreProcessor

__all__ = ['MultiTaskDataPreProcessor']
