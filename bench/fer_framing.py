import numpy as np, dlib, cv2, importlib.util, os
spec = importlib.util.find_spec("face_recognition_models")
model = os.path.join(list(spec.submodule_search_locations)[0], "models", "shape_predictor_68_face_landmarks.dat")
pred = dlib.shape_predictor(model); det = dlib.get_frontal_face_detector()
x = np.load("/work/shared/data/fer2013/train.npz")["x"]
rng = np.random.default_rng(0); idx = rng.choice(len(x), 1500, replace=False)
S = 4; rows = []
for i in idx:
    img = cv2.resize(x[i], (48*S, 48*S), interpolation=cv2.INTER_CUBIC)
    d = det(img, 0)
    if len(d) != 1: continue
    p = pred(img, d[0]); pts = np.array([(q.x, q.y) for q in p.parts()], float) / S
    le, re = pts[36:42].mean(0), pts[42:48].mean(0)
    mid = (le + re) / 2; dist = np.linalg.norm(re - le)
    mouth = pts[48:68].mean(0)
    rows.append((mid[0] / 48, mid[1] / 48, dist / 48, mouth[1] / 48, np.degrees(np.arctan2(re[1]-le[1], re[0]-le[0]))))
r = np.array(rows); print(len(r), "detected of", len(idx))
for name, col in zip(["eye_x", "eye_y", "eye_dist", "mouth_y", "roll"], r.T):
    print(name, np.percentile(col, [10, 25, 50, 75, 90]).round(3))
