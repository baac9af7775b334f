// Shared page state and a small event bus between the panes.
//   state.assistant   the assistant being edited and chatted with (saved
//                     object from the API, or null for a new one)
//   state.models      ids from GET /v1/models
// Events: 'assistant' (selection changed), 'error' (show a message),
// 'run' / 'step' (for the logs pane), 'key' (the key changed).
export const state = {
  assistant: null,
  assistants: [],
  models: [],
};

const subs = new Map();
export function on(name, fn) {
  if (!subs.has(name)) subs.set(name, new Set());
  subs.get(name).add(fn);
}
export function emit(name, ...args) {
  for (const fn of subs.get(name) || []) fn(...args);
}

// Coalesces calls to fn into one per animation frame.
export function throttled(fn) {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      fn();
    });
  };
}
