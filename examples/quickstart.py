"""Quickstart: a small, real ML pipeline recorded by pipeledger.

Loads the breast-cancer data set that ships with scikit-learn, splits it, trains a
classifier, evaluates it and logs its accuracy. Run it, then inspect the run:

    python examples/quickstart.py
    pipeledger run show
"""

from __future__ import annotations

from typing import Annotated

import pandas as pd
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split

from pipeledger import log_metadata, pipeline, step


@step
def load_data() -> pd.DataFrame:
    """Load the breast-cancer data set (569 samples, 30 features, 2 classes)."""
    frame = load_breast_cancer(as_frame=True).frame
    print(f"loaded {len(frame)} rows")
    return frame


@step
def split(
    data: pd.DataFrame, test_size: float = 0.25, seed: int = 42
) -> tuple[Annotated[pd.DataFrame, "train"], Annotated[pd.DataFrame, "test"]]:
    """Split the data into a training and a test set, stratified by class."""
    train, test = train_test_split(data, test_size=test_size, random_state=seed, stratify=data["target"])
    return train, test


@step
def train_model(
    train: pd.DataFrame, n_estimators: int = 20, max_depth: int = 2, seed: int = 42
) -> Annotated[RandomForestClassifier, "model"]:
    """Train a random forest on the training set."""
    model = RandomForestClassifier(n_estimators=n_estimators, max_depth=max_depth, random_state=seed)
    model.fit(train.drop(columns="target"), train["target"])
    return model


@step
def evaluate(model: RandomForestClassifier, test: pd.DataFrame) -> Annotated[float, "accuracy"]:
    """Measure accuracy on the test set and log it as metadata."""
    predictions = model.predict(test.drop(columns="target"))
    accuracy = float(accuracy_score(test["target"], predictions))
    log_metadata(accuracy=accuracy, test_rows=len(test))
    print(f"accuracy: {accuracy:.3f}")
    return accuracy


@pipeline
def cancer_classifier(n_estimators: int = 20, max_depth: int = 2):
    """Train and evaluate a tumour classifier."""
    data = load_data()
    train, test = split(data)
    model = train_model(train, n_estimators=n_estimators, max_depth=max_depth)
    evaluate(model, test)


if __name__ == "__main__":
    run = cancer_classifier()
    print(f"recorded {run!r}; accuracy {run.steps['evaluate'].metadata['accuracy']:.3f}")
