// The eval layer's error type: bad metric inputs, tagged with the metric name.

export class MetricError extends Error {
  override name = "MetricError";
}
