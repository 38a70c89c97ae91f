"""Frozen machine-vision networks that consume decoded images, and the task losses they provide."""

from task_networks.base import TaskNetwork
from task_networks.classifier import ImageNetClassifier
from task_networks.mtcnn import MTCNNFaces
from task_networks.torchvision_detectors import TorchvisionDetector

__all__ = ["ImageNetClassifier", "MTCNNFaces", "TaskNetwork", "TorchvisionDetector"]
