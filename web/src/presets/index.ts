// The submit page's presets: specs and sweep requests that load into the form.
// tests/service/api/test_dashboard.py submits each one and checks that seed.json is
// examples/seed_sgd_fixed_lr.json.

import type { JsonObject } from "../types";
import digitsBatching from "./digits-batching.json";
import lrMomentum from "./lr-momentum-fused.json";
import lrSchedules from "./lr-schedules.json";
import rosenbrock from "./rosenbrock-momentum.json";
import seed from "./seed.json";

export interface Preset {
  id: string;
  title: string;
  description: string;
  doc: JsonObject;
}

export const PRESETS: Preset[] = [
  { id: "seed", title: "The seed example", doc: seed as JsonObject,
    description: "x**2 towards 16 with SGD(lr=0.01), 20 steps: the forum post's script." },
  { id: "digits-batching", title: "Full batch vs mini-batch vs batch 1 (digits)", doc: digitsBatching as JsonObject,
    description: "The same MLP for 10 epochs at batch sizes all, 32 and 1: where the “stochastic” is." },
  { id: "rosenbrock-momentum", title: "Momentum vs none (Rosenbrock)", doc: rosenbrock as unknown as JsonObject,
    description: "SGD lr 0.001 from (−1.5, 2), 2,000 steps, momentum 0 and 0.9." },
  { id: "lr-schedules", title: "LR schedules compared (digits)", doc: lrSchedules as unknown as JsonObject,
    description: "Constant, StepLR, cosine, cyclic and one-cycle on the same MLP." },
  { id: "lr-momentum-fused", title: "lr × momentum sweep, fused (seed problem)", doc: lrMomentum as JsonObject,
    description: "100 points trained as one fused run." },
];
