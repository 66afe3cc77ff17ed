"""The server users write first, as the baseline of benchmarks/serve.py: a
FastAPI endpoint that calls ``model.predict`` on every request (a sync
endpoint, so FastAPI runs requests on its thread pool, each calling the
model). Same request and response shapes as ``portaclass serve``'s :predict,
and the same pixel scaling (the model's own, read from its file).

    KERAS_BACKEND=torch python benchmarks/naive_serve.py MODEL.keras PORT
"""

from __future__ import annotations

import sys

import keras
import numpy as np
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

from portaclass.data.normalize import normalize
from portaclass.models.registry import Preprocessing
from portaclass.train.checkpoint import read_model_info

model = keras.saving.load_model(sys.argv[1])
preprocessing = Preprocessing.from_dict(read_model_info(sys.argv[1])["preprocessing"])
app = FastAPI()


class Instances(BaseModel):
    instances: list


@app.post("/v1/models/{name}:predict")
def predict(name: str, body: Instances):
    x = normalize(np.asarray(body.instances, np.uint8), preprocessing).astype(np.float32)
    return {"predictions": model.predict(x, verbose=0).tolist()}


if __name__ == "__main__":
    print("ready", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
