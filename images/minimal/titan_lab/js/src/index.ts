// titan-lab: Titan inside JupyterLab.
// - "Share…" on a notebook publishes it through Titan's service (a report or a live dashboard) and
//   shows the link, its access and expiry; the service's own words when it refuses.
// - The status bar shows this server's profile and limits, and the autosave status of the
//   repository the current notebook is in (last snapshot and push; "sign in again" when needed).
// The server half (images/minimal/titan_lab/titan_lab) relays to the service as the server's owner.
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Dialog, ICommandPalette, ToolbarButton, showDialog } from '@jupyterlab/apputils';
import { URLExt } from '@jupyterlab/coreutils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';
import { IStatusBar } from '@jupyterlab/statusbar';
import { Widget } from '@lumino/widgets';

const SHARE = 'titan-lab:share';
const POLL_MS = 5000;

interface ServerModel {
  profile: string;
  image: string;
  cpu: number | null;
  memory: number | null;
  service: boolean;
}

interface Repo {
  path: string;
  state: string | null;
  message: string | null;
  error: string | null;
  last_snapshot: string | null;
  last_commit: string | null;
  last_push: string | null;
}

interface Answer {
  status: number;
  body: any;
}

async function call(path: string, init: RequestInit = {}): Promise<Answer> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'titan', 'api', path);
  const response = await ServerConnection.makeRequest(url, init, settings);
  let body: any = {};
  try {
    body = await response.json();
  } catch {
    body = {};
  }
  return { status: response.status, body };
}

function memoryText(bytes: number): string {
  const gib = bytes / 1024 ** 3;
  return gib >= 1 ? `${Number(gib.toFixed(1))} GB` : `${Math.round(bytes / 1024 ** 2)} MB`;
}

function timeText(iso: string | null): string {
  if (!iso) {
    return '';
  }
  const when = new Date(iso);
  return when.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

export function serverText(model: ServerModel): string {
  const parts = [model.profile || 'server'];
  if (model.cpu) {
    parts.push(`${model.cpu} CPU`);
  }
  if (model.memory) {
    parts.push(memoryText(model.memory));
  }
  return parts.join(' · ');
}

export function repoFor(repos: Repo[], notebookPath: string): Repo | undefined {
  const inside = repos.filter(r => r.path === '.' || r.path === '' || notebookPath === r.path ||
    notebookPath.startsWith(r.path.replace(/\/$/, '') + '/'));
  return inside.sort((a, b) => b.path.length - a.path.length)[0];
}

export function autosaveText(enabled: boolean, repo: Repo | undefined): { text: string; warn: boolean; title: string } {
  if (!enabled || !repo) {
    return { text: 'Autosave: off', warn: false, title: 'Autosave is not on for this folder (Titan service → Autosave)' };
  }
  const detail = repo.error || repo.message || '';
  let text = repo.last_snapshot ? `Autosave: saved ${timeText(repo.last_snapshot)}` : 'Autosave: no snapshot yet';
  if (/sign in|log in|token/i.test(detail)) {
    // Snapshots stay on the server until the owner signs in with GitHub again.
    return { text: `${text} · sign in again to push`, warn: true, title: detail };
  }
  text += repo.last_push ? ` · pushed ${timeText(repo.last_push)}` : ' · not pushed';
  return { text, warn: Boolean(repo.error), title: detail || repo.path };
}

class ShareForm extends Widget {
  constructor() {
    super();
    this.addClass('titan-lab-share-form');
    this.node.innerHTML = `
      <label for="titan-share-kind">Publish as</label>
      <select id="titan-share-kind" name="kind">
        <option value="report">Report (HTML)</option>
        <option value="dashboard">Live dashboard (Voila)</option>
      </select>
      <label for="titan-share-access">Who may open it</label>
      <select id="titan-share-access" name="access">
        <option value="team">Everyone who can log in</option>
        <option value="users">Only the users and groups named</option>
      </select>
      <label for="titan-share-users">Users, groups</label>
      <input id="titan-share-users" name="users" placeholder="alice, acme:data-team" />
      <label for="titan-share-expiry">Expires</label>
      <select id="titan-share-expiry" name="expiry">
        <option value="">Never</option>
        <option value="86400">In a day</option>
        <option value="604800">In a week</option>
        <option value="2592000">In 30 days</option>
      </select>`;
  }

  getValue(): Record<string, string> {
    const value = (name: string) =>
      (this.node.querySelector(`[name="${name}"]`) as HTMLInputElement | HTMLSelectElement).value;
    return { kind: value('kind'), access: value('access'), users: value('users'), expiry: value('expiry') };
  }
}

export function linkRequest(form: Record<string, string>, path: string, profile: string): Record<string, any> {
  const request: Record<string, any> = { kind: form.kind, path };
  if (form.access === 'users') {
    const names = form.users.split(',').map(s => s.trim()).filter(s => s);
    request.access = {
      mode: 'users',
      users: names.filter(n => !n.includes(':')),
      groups: names.filter(n => n.includes(':'))
    };
  } else {
    request.access = { mode: 'team' };
  }
  if (form.expiry) {
    request.expires_at = { in_seconds: Number(form.expiry) };
  }
  if (form.kind === 'dashboard') {
    request.app = 'voila';
    if (profile) {
      request.profile = profile;
    }
  }
  return request;
}

function resultBody(link: any): Widget {
  const body = new Widget();
  body.addClass('titan-lab-share-result');
  const url = new URL(link.url, window.location.origin).href;
  const access = link.access?.mode === 'users'
    ? `only ${[...(link.access.users || []), ...(link.access.groups || [])].join(', ')}`
    : link.access?.mode === 'public' ? 'anyone with the link' : 'everyone who can log in';
  const expiry = link.expires_at ? `until ${new Date(link.expires_at).toLocaleString()}` : 'no expiry';
  body.node.innerHTML = '<p>Your link:</p><p><a class="titan-lab-link" target="_blank" rel="noopener"></a></p>' +
    '<p class="titan-lab-link-access"></p>';
  const anchor = body.node.querySelector('a') as HTMLAnchorElement;
  anchor.href = url;
  anchor.textContent = url;
  (body.node.querySelector('.titan-lab-link-access') as HTMLElement).textContent = `Open to ${access}, ${expiry}.`;
  return body;
}

async function share(path: string, profile: string): Promise<void> {
  const form = new ShareForm();
  const choice = await showDialog({
    title: `Share ${path}`,
    body: form,
    buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Publish' })]
  });
  if (!choice.button.accept || !choice.value) {
    return;
  }
  const answer = await call('links', { method: 'POST', body: JSON.stringify(linkRequest(choice.value, path, profile)) });
  if (answer.status >= 200 && answer.status < 300) {
    await showDialog({ title: 'Shared', body: resultBody(answer.body), buttons: [Dialog.okButton({ label: 'Done' })] });
  } else {
    const message = answer.body?.message || `Titan's service answered ${answer.status}`;
    await showDialog({ title: 'Not shared', body: message, buttons: [Dialog.okButton()] });
  }
}

function textItem(className: string): Widget {
  const widget = new Widget();
  widget.addClass('titan-lab-status');
  widget.addClass(className);
  return widget;
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'titan-lab:plugin',
  description: 'Share a notebook through Titan, the autosave status and the server profile in the status bar.',
  autoStart: true,
  requires: [IStatusBar, INotebookTracker],
  optional: [ICommandPalette],
  activate: async (app: JupyterFrontEnd, statusBar: IStatusBar, notebooks: INotebookTracker,
    palette: ICommandPalette | null) => {
    const answer = await call('server');
    const server: ServerModel = answer.body;
    const profileItem = textItem('titan-lab-server');
    profileItem.node.textContent = serverText(server);
    profileItem.node.title = `Profile ${server.profile}, image ${server.image}`;
    statusBar.registerStatusItem('titan-lab:server', { item: profileItem, align: 'left', rank: 100 });
    if (!server.service) {
      return;
    }

    app.commands.addCommand(SHARE, {
      label: 'Share…',
      caption: 'Publish this notebook as a report or a live dashboard, with a link',
      isEnabled: () => notebooks.currentWidget !== null,
      execute: () => {
        const current = notebooks.currentWidget;
        if (current) {
          return share(current.context.path, server.profile);
        }
      }
    });
    palette?.addItem({ command: SHARE, category: 'Titan' });
    app.docRegistry.addWidgetExtension('Notebook', {
      createNew: (panel: NotebookPanel) => {
        const button = new ToolbarButton({
          className: 'titan-lab-share-button',
          label: 'Share…',
          tooltip: 'Publish this notebook as a report or a live dashboard',
          onClick: () => void share(panel.context.path, server.profile)
        });
        panel.toolbar.insertItem(10, 'titanShare', button);
        return button;
      }
    });

    const autosaveItem = textItem('titan-lab-autosave');
    statusBar.registerStatusItem('titan-lab:autosave', { item: autosaveItem, align: 'left', rank: 101 });
    const refresh = async () => {
      const status = await call('autosave');
      if (status.status !== 200) {
        autosaveItem.node.textContent = 'Autosave: unknown';
        autosaveItem.node.title = status.body?.message || '';
        return;
      }
      const path = notebooks.currentWidget?.context.path ?? '';
      const repo = repoFor(status.body.repositories || [], path);
      const shown = autosaveText(Boolean(status.body.enabled), repo);
      autosaveItem.node.dataset.lastCommit = repo?.last_commit ?? '';
      autosaveItem.node.textContent = shown.text;
      autosaveItem.node.title = shown.title;
      autosaveItem.toggleClass('titan-lab-warn', shown.warn);
    };
    notebooks.currentChanged.connect(() => void refresh());
    void refresh();
    window.setInterval(() => void refresh(), POLL_MS);
  }
};

export default plugin;
