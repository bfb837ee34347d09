"""Writes telemetry.csv: 60 s of 10 Hz telemetry from three vehicles on a motorway, the sample
data `quixd run` feeds into pipelines reading the `telemetry` topic on its development broker.

Speed (km/h) follows each driver's cruising speed with slow variation; one driver goes above
130 km/h twice. gForceX/Y/Z are longitudinal, lateral and vertical acceleration (g) from the
speed changes, lane changes and road noise; rpm and gear follow speed. camera_frame:base64 is
a stand-in JPEG frame (SOI marker, vehicle and frame number). Deterministic: seeded.
"""
import base64
import math
import random

START_NS = 1_764_064_800_000_000_000  # 2025-11-25T10:00:00Z
VEHICLES = {"car-1": (118.0, 0.0), "car-2": (96.0, 1.3), "van-3": (124.0, 2.1)}
random.seed(2026)

rows = []
for vehicle, (cruise, phase) in VEHICLES.items():
    previous = cruise + 6 * math.sin(phase)
    for i in range(600):
        t = i / 10.0
        speed = cruise + 6 * math.sin(t / 9 + phase) + random.gauss(0, 0.08)
        if vehicle == "van-3" and (18 <= t < 24 or 44 <= t < 47):
            speed += 14 * math.sin(math.pi * ((t - 18) / 6 if t < 30 else (t - 44) / 3))
        accel = (speed - previous) / 3.6 / 0.1  # m/s^2
        previous = speed
        lateral = 0.18 * math.sin(t / 2.5 + phase) * (1 if int(t / 15) % 2 else 0.3)
        gear = 6 if speed > 90 else 5
        rpm = speed * (21.5 if gear == 6 else 27.0) + random.gauss(0, 15)
        frame = b"\xff\xd8\xff\xe0" + f"{vehicle}/{i:04d}".encode()
        rows.append((START_NS + i * 100_000_000, vehicle, speed, accel / 9.81 + random.gauss(0, 0.01),
                     lateral + random.gauss(0, 0.01), 1.0 + random.gauss(0, 0.02), rpm, gear,
                     base64.b64encode(frame).decode()))

rows.sort()
with open("telemetry.csv", "w") as out:
    out.write("stream,timestamp,speed,gForceX,gForceY,gForceZ,rpm,gear,camera_frame:base64\n")
    for ts, vehicle, speed, gx, gy, gz, rpm, gear, frame in rows:
        out.write(f"{vehicle},{ts},{speed:.2f},{gx:.4f},{gy:.4f},{gz:.4f},{rpm:.0f},{gear},{frame}\n")
