// The vectors' subset match (tests/vectors/README.md, "Matching"): throws with
// the path of the first difference. Shared by the job and download runners.

export function subset(expected, actual, path = '$') {
  if (expected === null) {
    if (actual !== null && actual !== undefined) throw new Error(`${path}: expected null/absent, got ${JSON.stringify(actual)}`);
    return;
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual) || actual.length !== expected.length) {
      throw new Error(`${path}: expected ${expected.length} items, got ${JSON.stringify(actual)}`);
    }
    expected.forEach((e, i) => subset(e, actual[i], `${path}[${i}]`));
    return;
  }
  if (typeof expected === 'object') {
    if (actual === null || typeof actual !== 'object' || Array.isArray(actual)) {
      throw new Error(`${path}: expected an object, got ${JSON.stringify(actual)}`);
    }
    for (const [k, v] of Object.entries(expected)) subset(v, actual[k], `${path}.${k}`);
    return;
  }
  if (expected !== actual) throw new Error(`${path}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}
