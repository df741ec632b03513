/**
 * Cellar's JupyterLab extension.
 *
 * "Promote to production" (cell toolbar, notebook toolbar, cell context menu) sends the notebook
 * as the browser has it (unsaved edits included) and the selected cells to the server extension
 * (cellar_notebooks), which forwards to Cellar with the user's kernel token. The dialog shows the
 * preview first (steps and their inferred DAG, parameters, resources, target pipeline, changes
 * against production, compile problems marked on their cells); its primary button creates the
 * version, moves `production` and optionally runs it in one request. Without the admin scope it
 * is "Save version", with who can promote. A side panel lists the pipeline's recent runs.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { URLExt } from '@jupyterlab/coreutils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

const PROMOTE = 'cellar:promote-cells';
const RUNS = 'cellar:show-runs';

const cellarIcon = new LabIcon({
  name: 'cellar:promote',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16" height="16">' +
    '<path class="jp-icon3" fill="#616161" d="M12 3l7 7h-4v8H9v-8H5z"/><rect class="jp-icon3" fill="#616161" x="5" y="19" width="14" height="2"/></svg>'
});

interface IContext {
  username: string;
  teams: string[];
  team: string;
  cellar_url: string;
}

interface IStep {
  name: string;
  resources?: Record<string, unknown>;
  tags?: string[];
  source?: { cells?: number[] } | null;
}

interface IProblem {
  code: string;
  message: string;
  cell?: number | null;
  step?: string | null;
  line?: number | null;
}

interface IPreview {
  ok: boolean;
  id: string | null;
  steps: IStep[];
  edges: { source: string; target: string; variables: string[] }[];
  parameters: { name: string; default: unknown; type?: string }[];
  warnings: IProblem[];
  problems: IProblem[];
  target: { name: string; exists: boolean; production: { id: string; number: number } | null };
  diff: {
    same_as_production: boolean;
    steps: { name: string; status: string }[];
    parameters: { name: string; status: string; from: any; to: any }[];
    environment: { changed: boolean };
  } | null;
  existing_pipelines: string[];
  can_save: boolean;
  can_promote: boolean;
  can_run: boolean;
  promoters: string[];
}

async function call<T>(path: string, init: RequestInit = {}): Promise<{ status: number; body: T }> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'cellar', path);
  const response = await ServerConnection.makeRequest(url, init, settings);
  let body: any = {};
  try {
    body = await response.json();
  } catch {
    body = {};
  }
  return { status: response.status, body };
}

function errorText(body: any, status: number): string {
  const error = body && body.error;
  if (error) {
    return `${error.message} (${error.code})`;
  }
  return `Cellar answered ${status}.`;
}

function escapeHtml(text: unknown): string {
  return String(text ?? '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

function defaultPipelineName(panel: NotebookPanel): string {
  const meta = (panel.content.model?.getMetadata('cellar') as any) || {};
  if (meta.pipeline) {
    return meta.pipeline;
  }
  const base = panel.context.path.split('/').pop() || 'pipeline';
  return (
    base
      .replace(/\.ipynb$/, '')
      .toLowerCase()
      .replace(/[^a-z0-9_-]+/g, '-')
      .replace(/^-+|-+$/g, '') || 'pipeline'
  );
}

/** The selected cells' indices when several are selected, else null (the whole notebook). */
function selectedCells(panel: NotebookPanel): number[] | null {
  const notebook = panel.content;
  const picked: number[] = [];
  notebook.widgets.forEach((cell, index) => {
    if (notebook.isSelected(cell)) {
      picked.push(index);
    }
  });
  return picked.length > 1 ? picked : null;
}

/** Steps placed in layers by their inferred edges: a small SVG DAG. */
function dagSvg(preview: IPreview): string {
  const level: Record<string, number> = {};
  for (const step of preview.steps) {
    const parents = preview.edges.filter(e => e.target === step.name).map(e => level[e.source] ?? 0);
    level[step.name] = parents.length ? Math.max(...parents) + 1 : 0;
  }
  const rows: Record<number, number> = {};
  const place: Record<string, { x: number; y: number }> = {};
  for (const step of preview.steps) {
    const l = level[step.name];
    rows[l] = (rows[l] ?? -1) + 1;
    place[step.name] = { x: 10 + l * 150, y: 10 + rows[l] * 44 };
  }
  const width = 20 + (Math.max(0, ...Object.values(level)) + 1) * 150;
  const height = 20 + (Math.max(0, ...Object.values(rows)) + 1) * 44;
  const lines = preview.edges
    .filter(e => place[e.source] && place[e.target])
    .map(e => {
      const a = place[e.source];
      const b = place[e.target];
      return (
        `<line x1="${a.x + 120}" y1="${a.y + 15}" x2="${b.x}" y2="${b.y + 15}" stroke="#888" marker-end="url(#cellar-arrow)"/>` +
        `<title>${escapeHtml(e.variables.join(', '))}</title>`
      );
    })
    .join('');
  const boxes = preview.steps
    .map(s => {
      const p = place[s.name];
      return (
        `<g data-step="${escapeHtml(s.name)}"><rect x="${p.x}" y="${p.y}" width="120" height="30" rx="4" fill="#e8f0fe" stroke="#4a6fa5"/>` +
        `<text x="${p.x + 60}" y="${p.y + 19}" text-anchor="middle" font-size="12">${escapeHtml(s.name)}</text></g>`
      );
    })
    .join('');
  return (
    `<svg class="cellar-dag" data-testid="cellar-dag" width="${width}" height="${height}">` +
    '<defs><marker id="cellar-arrow" markerWidth="8" markerHeight="8" refX="8" refY="4" orient="auto">' +
    '<path d="M0,0 L8,4 L0,8 z" fill="#888"/></marker></defs>' +
    lines +
    boxes +
    '</svg>'
  );
}

function resourcesText(step: IStep): string {
  const r = step.resources || {};
  const parts = Object.entries(r)
    .filter(([, v]) => v !== null && v !== undefined && v !== '' && v !== 0)
    .map(([k, v]) => `${k} ${v}`);
  return parts.join(', ') || 'defaults';
}

function renderPreview(preview: IPreview, cells: number[] | null): string {
  const what = cells ? `${cells.length} selected cells` : 'the whole notebook';
  const parts: string[] = [];
  parts.push(`<p class="cellar-muted">Promoting ${what}.</p>`);
  const target = preview.target;
  const production = target.production ? `production is v${target.production.number}` : 'no production version yet';
  parts.push(
    `<p data-testid="cellar-target">Target: <strong>${escapeHtml(target.name)}</strong> ` +
      `(${target.exists ? 'existing pipeline, ' + production : 'new pipeline'})</p>`
  );
  if (!preview.ok) {
    parts.push('<h3 class="cellar-error">Problems (nothing will be sent until they are fixed)</h3><ul data-testid="cellar-problems">');
    for (const p of preview.problems) {
      const where = p.cell !== null && p.cell !== undefined ? `cell ${p.cell}${p.line ? ', line ' + p.line : ''}: ` : '';
      parts.push(`<li class="cellar-error">${escapeHtml(where)}${escapeHtml(p.message)} <code>${escapeHtml(p.code)}</code></li>`);
    }
    parts.push('</ul>');
    return parts.join('');
  }
  parts.push(`<h3>Steps (${preview.steps.length})</h3>`);
  parts.push(dagSvg(preview));
  parts.push('<table data-testid="cellar-steps"><tr><th>Step</th><th>Inputs</th><th>Resources</th></tr>');
  for (const s of preview.steps) {
    const inputs = preview.edges
      .filter(e => e.target === s.name)
      .map(e => `${e.variables.join(', ')} ← ${e.source}`)
      .join('; ');
    parts.push(
      `<tr data-step="${escapeHtml(s.name)}"><td>${escapeHtml(s.name)}</td><td>${escapeHtml(inputs || '—')}</td><td>${escapeHtml(resourcesText(s))}</td></tr>`
    );
  }
  parts.push('</table>');
  parts.push('<h3>Parameters</h3>');
  if (preview.parameters.length) {
    parts.push('<table data-testid="cellar-parameters"><tr><th>Name</th><th>Default</th></tr>');
    for (const p of preview.parameters) {
      parts.push(`<tr><td>${escapeHtml(p.name)}</td><td><code>${escapeHtml(JSON.stringify(p.default))}</code></td></tr>`);
    }
    parts.push('</table>');
  } else {
    parts.push('<p class="cellar-muted">None.</p>');
  }
  parts.push('<h3>Changes against production</h3><div data-testid="cellar-diff">');
  if (!preview.diff) {
    parts.push('<p class="cellar-muted">Nothing to compare: this will be the first production version.</p>');
  } else if (preview.diff.same_as_production) {
    parts.push('<p class="cellar-ok">Identical to the current production version.</p>');
  } else {
    const changed = preview.diff.steps.filter(s => s.status !== 'unchanged');
    parts.push('<ul>');
    for (const s of changed) {
      parts.push(`<li class="cellar-status-${s.status}">step <strong>${escapeHtml(s.name)}</strong>: ${escapeHtml(s.status)}</li>`);
    }
    for (const p of preview.diff.parameters) {
      const from = p.from ? JSON.stringify(p.from.default) : '—';
      const to = p.to ? JSON.stringify(p.to.default) : '—';
      parts.push(`<li>parameter <strong>${escapeHtml(p.name)}</strong>: ${escapeHtml(from)} → ${escapeHtml(to)}</li>`);
    }
    if (preview.diff.environment.changed) {
      parts.push('<li>environment: packages changed</li>');
    }
    parts.push('</ul>');
  }
  parts.push('</div>');
  if (preview.warnings.length) {
    parts.push(`<p class="cellar-muted">${preview.warnings.length} warning(s): ${escapeHtml(preview.warnings.map(w => w.message).join(' · '))}</p>`);
  }
  if (!preview.can_promote) {
    const who = preview.promoters.length ? preview.promoters.join(', ') : 'a team admin';
    parts.push(
      `<p data-testid="cellar-who-promotes">Your role cannot move <code>production</code>: this saves a version, and ${escapeHtml(who)} can promote it.` +
        (preview.can_save ? '' : ' Your role cannot save versions either (it needs the editor role).') +
        '</p>'
    );
  }
  return parts.join('');
}

/** Mark the cells the compiler complained about, and clear earlier marks. */
function markProblems(panel: NotebookPanel, problems: IProblem[]): void {
  panel.content.widgets.forEach(cell => {
    cell.removeClass('cellar-problem');
    cell.node.querySelectorAll('.cellar-problem-message').forEach(n => n.remove());
  });
  for (const p of problems) {
    if (p.cell === null || p.cell === undefined) {
      continue;
    }
    const cell = panel.content.widgets[p.cell];
    if (!cell) {
      continue;
    }
    cell.addClass('cellar-problem');
    const note = document.createElement('div');
    note.className = 'cellar-problem-message';
    note.dataset.testid = 'cellar-cell-problem';
    note.textContent = `Cellar: ${p.message}${p.line ? ' (line ' + p.line + ')' : ''}`;
    cell.node.prepend(note);
  }
}

class PromoteBody extends Widget {
  constructor(private context: IContext) {
    super();
    this.addClass('cellar-dialog');
  }

  team = '';
  pipeline = '';
  preview: IPreview | null = null;

  render(preview: IPreview, cells: number[] | null): void {
    this.preview = preview;
    const teams = this.context.teams
      .map(t => `<option value="${escapeHtml(t)}" ${t === this.team ? 'selected' : ''}>${escapeHtml(t)}</option>`)
      .join('');
    const options = preview.existing_pipelines.map(n => `<option value="${escapeHtml(n)}"></option>`).join('');
    this.node.innerHTML =
      '<div class="cellar-row">' +
      `<label>Team <select class="cellar-team" data-testid="cellar-team">${teams}</select></label>` +
      `<label>Pipeline <input class="cellar-pipeline" data-testid="cellar-pipeline" list="cellar-pipelines" value="${escapeHtml(this.pipeline)}"></label>` +
      `<datalist id="cellar-pipelines">${options}</datalist>` +
      `<label><input type="checkbox" class="cellar-run-now" data-testid="cellar-run-now" ${preview.can_run ? '' : 'disabled'}> Run now</label>` +
      '</div>' +
      `<div class="cellar-preview" data-testid="cellar-preview">${renderPreview(preview, cells)}</div>`;
  }

  get runNow(): boolean {
    const box = this.node.querySelector('.cellar-run-now') as HTMLInputElement | null;
    return !!box && box.checked;
  }
}

async function promote(app: JupyterFrontEnd, tracker: INotebookTracker, panels: RunsPanel): Promise<void> {
  const panel = tracker.currentWidget;
  if (!panel) {
    return;
  }
  const ctx = await call<IContext>('context');
  if (ctx.status !== 200 || !ctx.body.teams.length) {
    await showDialog({
      title: 'Cellar is not reachable',
      body: ctx.status === 200 ? 'Your account is not in any Cellar team yet.' : errorText(ctx.body, ctx.status),
      buttons: [Dialog.okButton()]
    });
    return;
  }
  const context = ctx.body;
  const meta = (panel.content.model?.getMetadata('cellar') as any) || {};
  const body = new PromoteBody(context);
  body.team = meta.team && context.teams.includes(meta.team) ? meta.team : context.team || context.teams[0];
  body.pipeline = defaultPipelineName(panel);
  const cells = selectedCells(panel);
  const notebookJson = () => panel.content.model!.toJSON();

  const refresh = async (): Promise<IPreview | null> => {
    const result = await call<IPreview>('preview', {
      method: 'POST',
      body: JSON.stringify({
        team: body.team,
        pipeline: body.pipeline,
        notebook: notebookJson(),
        cells,
        notebook_name: panel.context.path
      })
    });
    if (result.status !== 200) {
      body.node.innerHTML = `<p class="cellar-error">${escapeHtml(errorText(result.body, result.status))}</p>`;
      return null;
    }
    body.render(result.body, cells);
    markProblems(panel, result.body.problems);
    const accept = document.querySelector('.jp-Dialog .jp-mod-accept .jp-Dialog-buttonLabel');
    if (accept) {
      accept.textContent = result.body.can_promote ? 'Promote to production' : 'Save version';
    }
    return result.body;
  };

  let preview = await refresh();
  if (!preview) {
    await showDialog({ title: 'Promote to production', body, buttons: [Dialog.okButton({ label: 'Close' })] });
    return;
  }
  body.node.addEventListener('change', async event => {
    const target = event.target as HTMLElement;
    if (target.classList.contains('cellar-team')) {
      body.team = (target as HTMLSelectElement).value;
    } else if (target.classList.contains('cellar-pipeline')) {
      body.pipeline = (target as HTMLInputElement).value.trim();
    } else {
      return;
    }
    preview = await refresh();
  });
  const label = preview.can_promote ? 'Promote to production' : 'Save version';
  const result = await showDialog({
    title: 'Promote to production',
    body,
    buttons: [Dialog.cancelButton(), Dialog.okButton({ label })]
  });
  if (!result.button.accept) {
    return;
  }
  preview = body.preview;
  if (!preview || !preview.ok) {
    await showDialog({
      title: 'Not promoted',
      body: 'Fix the problems marked on the cells, then promote again.',
      buttons: [Dialog.okButton()]
    });
    return;
  }
  const runNow = body.runNow;
  const sent = await call<any>('promote', {
    method: 'POST',
    body: JSON.stringify({
      team: body.team,
      pipeline: body.pipeline,
      notebook: notebookJson(),
      cells,
      notebook_name: panel.context.path,
      production: preview.can_promote,
      run_now: runNow
    })
  });
  if (sent.status !== 200 && sent.status !== 201) {
    await showDialog({ title: 'Not promoted', body: errorText(sent.body, sent.status), buttons: [Dialog.okButton()] });
    return;
  }
  panel.content.model?.setMetadata('cellar', { team: body.team, pipeline: body.pipeline });
  const done = sent.body;
  const version = done.version;
  const node = document.createElement('div');
  node.dataset.testid = 'cellar-promoted';
  node.innerHTML =
    `<p>${done.is_production ? 'Production now runs' : 'Saved'} <a href="${escapeHtml(version.url)}" target="_blank" data-testid="cellar-version-link">` +
    `${escapeHtml(version.pipeline)} v${escapeHtml(version.number)}</a>${done.created ? '' : ' (the same content was already a version)'}.</p>` +
    (done.run
      ? `<p>Run <a href="${escapeHtml(done.run.url)}" target="_blank" data-testid="cellar-run-link">#${escapeHtml(done.run.number)}</a> started.</p>`
      : '');
  panels.watch(body.team, body.pipeline);
  await showDialog({
    title: done.is_production ? 'Promoted to production' : 'Version saved',
    body: new Widget({ node }),
    buttons: [Dialog.okButton()]
  });
}

/** The side panel: this notebook's pipeline's recent runs, refreshed while it is shown. */
class RunsPanel extends Widget {
  private team = '';
  private pipeline = '';
  private timer: number | undefined;

  constructor(private tracker: INotebookTracker) {
    super();
    this.id = 'cellar-runs';
    this.title.icon = cellarIcon;
    this.title.caption = 'Cellar: recent pipeline runs';
    this.addClass('cellar-runs');
    this.node.dataset.testid = 'cellar-runs';
    tracker.currentChanged.connect(() => this.followNotebook());
  }

  watch(team: string, pipeline: string): void {
    this.team = team;
    this.pipeline = pipeline;
    void this.refresh();
  }

  private followNotebook(): void {
    const meta = (this.tracker.currentWidget?.content.model?.getMetadata('cellar') as any) || {};
    if (meta.team && meta.pipeline) {
      this.watch(meta.team, meta.pipeline);
    }
  }

  protected onAfterShow(): void {
    this.followNotebook();
    this.timer = window.setInterval(() => void this.refresh(), 5000);
  }

  protected onAfterHide(): void {
    window.clearInterval(this.timer);
  }

  async refresh(): Promise<void> {
    if (!this.pipeline) {
      this.node.innerHTML = '<p>Promote this notebook to see its pipeline runs here.</p>';
      return;
    }
    const query = `runs?team=${encodeURIComponent(this.team)}&pipeline=${encodeURIComponent(this.pipeline)}`;
    const result = await call<any>(query);
    if (result.status !== 200) {
      this.node.innerHTML = `<p class="cellar-error">${escapeHtml(errorText(result.body, result.status))}</p>`;
      return;
    }
    const rows = (result.body.results || [])
      .map(
        (r: any) =>
          `<tr data-run="${escapeHtml(r.number)}"><td>#${escapeHtml(r.number)}</td><td data-testid="cellar-run-state">${escapeHtml(r.state)}</td>` +
          `<td>v${escapeHtml(r.version?.number ?? '')}</td><td>${escapeHtml((r.created_at || '').slice(0, 19).replace('T', ' '))}</td></tr>`
      )
      .join('');
    this.node.innerHTML =
      `<h3>${escapeHtml(this.pipeline)} <span class="cellar-muted">(${escapeHtml(this.team)})</span></h3>` +
      (rows ? `<table><tr><th>Run</th><th>State</th><th>Version</th><th>Created (UTC)</th></tr>${rows}</table>` : '<p>No runs yet.</p>');
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'cellar-notebooks:plugin',
  description: 'Promote notebook cells to production in Cellar.',
  autoStart: true,
  requires: [INotebookTracker],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker) => {
    const runs = new RunsPanel(tracker);
    app.shell.add(runs, 'right', { rank: 900 });
    app.commands.addCommand(PROMOTE, {
      label: 'Promote to production',
      caption: 'Promote the selected cells (or the notebook) to a Cellar pipeline',
      icon: cellarIcon,
      isEnabled: () => tracker.currentWidget !== null,
      execute: () => promote(app, tracker, runs)
    });
    app.commands.addCommand(RUNS, {
      label: 'Cellar: recent pipeline runs',
      execute: () => app.shell.activateById(runs.id)
    });
  }
};

export default plugin;
