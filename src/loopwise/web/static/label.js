// The labeling page: one item on screen, the next already held and loaded; keys 1-9 and 0 answer, S skips,
// U (or Ctrl+Z) takes back the last answer. A human loop's item comes with the model's prediction
// preselected: Enter accepts it. Answers go to the server in the background, each once.
(() => {
  "use strict";
  const root = document.getElementById("labeler");
  if (!root) return;
  const job = root.dataset.job;
  const blind = root.dataset.blind === "true";
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
  const text = document.getElementById("text");
  const others = document.getElementById("others");
  const notice = document.getElementById("notice");
  const progress = document.getElementById("progress");
  const done = document.getElementById("done");
  const choices = [...document.querySelectorAll(".choice")];

  let current = null; // the task on screen
  const queue = []; // held and loaded, next in line
  let answered = 0;
  let pending = 0; // answers on their way to the server
  let fetching = null;
  let exhausted = false;

  async function call(path, body) {
    const response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body || {}),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error(data.error?.message || response.statusText);
      error.status = response.status;
      throw error;
    }
    return data;
  }

  const held = () => [current, ...queue].filter(Boolean).map((t) => t.assignment_id);

  // asked for only while no answer is on its way: until the server has it, that hold still counts as
  // one of the worker's two, and would come back as "next"
  function refill() {
    if (pending) return null;
    if (undoWanted) {
      undoWanted = false;
      undo();
      return null;
    }
    if (fetching) return fetching;
    fetching = (async () => {
      while (queue.length < 1) {
        const { tasks } = await call(`/api/v1/labeling/jobs/${job}/next`, { have: held() });
        const fresh = tasks.filter((t) => !held().includes(t.assignment_id));
        if (!fresh.length) {
          exhausted = true;
          break;
        }
        exhausted = false;
        queue.push(...fresh);
        if (!current) show();
      }
    })()
      .catch((error) => say(`Could not load the next item: ${error.message}`))
      .finally(() => {
        fetching = null;
        if (!current) show();
      });
    return fetching;
  }

  function say(message) {
    notice.textContent = message;
    notice.hidden = !message;
  }

  function show() {
    if (!current) current = queue.shift() || null;
    if (!current) {
      text.textContent = "";
      others.hidden = true;
      choices.forEach((c) => c.classList.remove("preselected"));
      const finished = exhausted && !fetching && !pending;
      root.dataset.state = finished ? "done" : "loading";
      done.hidden = !finished;
      if (!finished) text.textContent = "Loading…";
      return;
    }
    done.hidden = true;
    text.textContent = current.source;
    choices.forEach((c) => c.classList.toggle("preselected", c.dataset.label === current.initial));
    root.dataset.initial = current.initial ?? "";
    root.dataset.assignment = current.assignment_id;
    root.dataset.position = current.position;
    if (!blind && current.others.length) {
      others.textContent = `Other workers answered: ${current.others.join(", ")}`;
      others.hidden = false;
    } else {
      others.hidden = true;
    }
    root.dataset.state = "ready";
  }

  function counts() {
    root.dataset.answered = answered;
    root.dataset.pending = pending;
    progress.textContent = `${answered} answered in this visit`;
  }

  function answer(label) {
    if (!current) return;
    const task = current;
    current = null;
    choices.forEach((c) => c.classList.toggle("chosen", c.dataset.label === label));
    show(); // the next item is on screen before the answer reaches the server
    pending += 1;
    counts();
    call(`/api/v1/labeling/assignments/${task.assignment_id}/submit`, { label })
      .then(() => {
        answered += 1;
        say("");
      })
      .catch((error) => say(`That answer was not stored: ${error.message}`))
      .finally(() => {
        pending -= 1;
        counts();
        setTimeout(() => choices.forEach((c) => c.classList.remove("chosen")), 120);
        refill();
      });
  }

  function skip() {
    if (!current) return;
    const task = current;
    current = null;
    show();
    pending += 1;
    call(`/api/v1/labeling/assignments/${task.assignment_id}/skip`)
      .catch((error) => say(error.message))
      .finally(() => {
        pending -= 1;
        counts();
        refill();
      });
  }

  let undoWanted = false;

  async function undo() {
    if (pending) {
      undoWanted = true; // the last answer is still on its way: take it back once it has arrived
      return;
    }
    try {
      const task = await call(`/api/v1/labeling/jobs/${job}/undo`);
      if (current) queue.unshift(current);
      current = task;
      answered -= 1;
      counts();
      say(`Your answer to item ${task.position} was taken back: answer it again.`);
      show();
    } catch (error) {
      say(error.message);
    }
  }

  document.addEventListener("keydown", (event) => {
    if (event.altKey || event.metaKey || event.target.closest("input, textarea, select")) return;
    if (event.ctrlKey) {
      if (event.key === "z") {
        event.preventDefault();
        undo();
      }
      return;
    }
    const choice = choices.find((c) => c.dataset.key === event.key);
    if (choice) {
      event.preventDefault();
      answer(choice.dataset.label);
    } else if (event.key === "Enter" && current?.initial != null && !event.target.closest("button")) {
      event.preventDefault();
      answer(current.initial); // accept the preselected prediction
    } else if (event.key === "s" || event.key === "S") {
      skip();
    } else if (event.key === "u" || event.key === "U") {
      undo();
    }
  });
  choices.forEach((c) => c.addEventListener("click", () => answer(c.dataset.label)));
  document.getElementById("skip").addEventListener("click", skip);
  document.getElementById("undo").addEventListener("click", undo);
  counts();
  show();
  refill();
})();
