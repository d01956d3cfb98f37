"""The tutorial's model API in the tutorial's shape (Flask's dev server, a pickle, ``jsonify``): the benchmark's
baseline, not for production. Only the pickle's path, the address and the port come from the environment."""

import os
import pickle

import numpy as np
from flask import Flask, jsonify, request

app = Flask(__name__)

# The tutorial unpickles its model file as the module loads.
with open(os.environ.get("MODEL_PATH", "model.pkl"), "rb") as model_file:
    model = pickle.load(model_file)


@app.route("/predict", methods=["POST"])
def predict():
    data = request.get_json(force=True)
    features = np.array(data["features"]).reshape(1, -1)
    prediction = model.predict(features)
    return jsonify({"prediction": prediction.tolist()})


if __name__ == "__main__":
    app.run(host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "5000")))
