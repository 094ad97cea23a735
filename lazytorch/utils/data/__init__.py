"""`lazytorch.utils.data`: datasets, samplers and the DataLoader, with torch.utils.data's API."""
from lazytorch.utils.data.dataloader import DataLoader, default_collate, default_convert
from lazytorch.utils.data.dataset import (ChainDataset, ConcatDataset, Dataset, IterableDataset, Subset,
                                          TensorDataset, random_split)
from lazytorch.utils.data.sampler import (BatchSampler, RandomSampler, Sampler, SequentialSampler,
                                          SubsetRandomSampler)

__all__ = ["DataLoader", "default_collate", "default_convert", "Dataset", "IterableDataset", "TensorDataset",
           "Subset", "ConcatDataset", "ChainDataset", "random_split", "Sampler", "SequentialSampler",
           "RandomSampler", "SubsetRandomSampler", "BatchSampler"]
