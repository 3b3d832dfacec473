// coalesced(run, onError): an async function that runs `run` one call at a time. A call that
// comes while a run is under way makes one more run after it (however many came) and returns
// at once; an error of a run goes to onError.

export function coalesced(run, onError) {
  let running = false;
  let dirty = false;
  return async () => {
    if (running) { dirty = true; return; }
    running = true;
    try {
      do {
        dirty = false;
        await run();
      } while (dirty);
    } catch (error) {
      onError(error);
    } finally {
      running = false;
    }
  };
}
