// The comm to the kernel of the notebook in focus. Follows focus, kernel changes and
// restarts; detects a kernel where dataask is not loaded (the kernel closes the comm at once)
// and retries after every finished execution, so running `%load_ext dataask` in a cell
// connects the panel too.

import type { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import type { Kernel, KernelMessage as KM } from '@jupyterlab/services';
import { PanelModel } from './model';
import { KernelMessage, PanelState, Reply, TARGET, TurnView } from './protocol';

export const LOAD_CODE = '%load_ext dataask';

/** The connection ended before the reply came (not the kernel's refusal). */
export class ClosedError extends Error {}

interface Pending {
  resolve: (reply: Reply & { buffers: DataView[] }) => void;
  reject: (err: Error) => void;
}

export class KernelLink {
  private panel: NotebookPanel | null = null;
  private kernel: Kernel.IKernelConnection | null = null;
  private comm: Kernel.IComm | null = null;
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private restarting = false;
  private reloadAfterRestart = false; // dataask was loaded before the restart: load it again
  private loadedInKernel = false; // this kernel has welcomed the panel (and not unloaded since)
  private generation = 0; // bumps on every (re)connect: late messages of old comms are dropped

  constructor(
    private tracker: INotebookTracker,
    private model: PanelModel
  ) {
    tracker.currentChanged.connect(this.onCurrentChanged, this);
    this.follow(tracker.currentWidget);
  }

  get notebook(): NotebookPanel | null {
    return this.panel;
  }

  /** Send a request; resolves with the kernel's reply (rejects with its one-line error). */
  request(
    op: string,
    args: Record<string, any> = {},
    buffers?: (ArrayBuffer | ArrayBufferView)[]
  ): Promise<Reply & { buffers: DataView[] }> {
    const comm = this.comm;
    if (!comm || this.model.status !== 'ready') {
      return Promise.reject(new Error('the panel is not connected to a kernel with dataask'));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      try {
        comm.send({ op, id, ...args }, undefined, buffers);
      } catch (err) {
        this.pending.delete(id);
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
  }

  /** Run `%load_ext dataask` in the kernel, then connect. */
  async loadDataask(): Promise<void> {
    const kernel = this.kernel;
    if (!kernel) {
      return;
    }
    this.model.setStatus('loading');
    const future = kernel.requestExecute({ code: LOAD_CODE, silent: false, store_history: false });
    let error = '';
    future.onIOPub = msg => {
      if (msg.header.msg_type === 'error') {
        const content = msg.content as KM.IErrorMsg['content'];
        error = `${content.ename}: ${content.evalue}`;
      }
    };
    const reply = await future.done;
    if (kernel !== this.kernel) {
      return;
    }
    if (reply.content.status !== 'ok') {
      const missing = error.includes('ModuleNotFoundError');
      this.model.setStatus(
        'failed',
        missing ? 'dataask is not installed in this kernel’s environment: pip install dataask-jupyter' : error
      );
      return;
    }
    this.connect();
  }

  dispose(): void {
    this.tracker.currentChanged.disconnect(this.onCurrentChanged, this);
    this.detach();
  }

  // --- following ------------------------------------------------------------------------
  private onCurrentChanged(_t: INotebookTracker, panel: NotebookPanel | null): void {
    this.follow(panel);
  }

  private follow(panel: NotebookPanel | null): void {
    if (panel === this.panel) {
      return;
    }
    this.detach();
    this.panel = panel;
    if (!panel) {
      this.model.clear('');
      this.model.setStatus('no-notebook');
      return;
    }
    this.model.clear(panel.context.path);
    panel.sessionContext.kernelChanged.connect(this.onKernelChanged, this);
    panel.disposed.connect(this.onPanelDisposed, this);
    this.useKernel(panel.sessionContext.session?.kernel ?? null);
  }

  private onPanelDisposed(): void {
    if (this.tracker.currentWidget === null) {
      this.follow(null);
    }
  }

  private onKernelChanged(): void {
    if (!this.panel) {
      return;
    }
    this.model.clear(this.panel.context.path);
    this.useKernel(this.panel.sessionContext.session?.kernel ?? null);
  }

  private useKernel(kernel: Kernel.IKernelConnection | null): void {
    // a restart may hand over a new connection to the same kernel: keep what we knew
    const sameKernel = kernel !== null && this.kernel !== null && kernel.id === this.kernel.id;
    this.dropKernel();
    if (!sameKernel) {
      this.reloadAfterRestart = false;
      this.loadedInKernel = false;
    }
    this.kernel = kernel;
    if (!kernel) {
      this.model.setStatus('waiting', 'the notebook has no kernel yet');
      return;
    }
    kernel.statusChanged.connect(this.onKernelStatus, this);
    kernel.anyMessage.connect(this.onAnyMessage, this);
    this.connect();
  }

  private detach(): void {
    if (this.panel) {
      this.panel.sessionContext.kernelChanged.disconnect(this.onKernelChanged, this);
      this.panel.disposed.disconnect(this.onPanelDisposed, this);
    }
    this.dropKernel();
    this.panel = null;
  }

  private dropKernel(): void {
    if (this.kernel) {
      this.kernel.statusChanged.disconnect(this.onKernelStatus, this);
      this.kernel.anyMessage.disconnect(this.onAnyMessage, this);
    }
    this.closeComm();
    this.kernel = null;
  }

  private onKernelStatus(_k: Kernel.IKernelConnection, status: KM.Status): void {
    if (status === 'restarting' || status === 'autorestarting' || status === 'dead') {
      this.reloadAfterRestart ||= this.loadedInKernel && status !== 'dead';
      this.loadedInKernel = false;
      this.restarting = true;
      this.closeComm();
      this.model.clear(this.panel?.context.path ?? '');
      this.model.setStatus('waiting', status === 'dead' ? 'the kernel died' : 'the kernel is restarting');
    } else if (this.restarting && status === 'idle') {
      this.restarting = false;
      this.connect();
    }
  }

  /** After any execution finishes, a kernel without dataask may have loaded it: try again. */
  private onAnyMessage(_k: Kernel.IKernelConnection, args: Kernel.IAnyMessageArgs): void {
    const type = args.msg.header.msg_type;
    if (args.direction === 'recv' && type === 'execute_reply' && this.model.status === 'not-loaded') {
      this.connect();
    }
  }

  // --- the comm -------------------------------------------------------------------------
  private connect(): void {
    const kernel = this.kernel;
    if (!kernel) {
      return;
    }
    this.closeComm();
    const generation = ++this.generation;
    let comm: Kernel.IComm;
    try {
      comm = kernel.createComm(TARGET);
    } catch (err) {
      this.model.setStatus('waiting', String(err));
      return;
    }
    this.comm = comm;
    if (this.model.status !== 'ready') {
      this.model.setStatus('waiting');
    }
    const helloId = this.nextId++;
    let welcomed = false;
    this.pending.set(helloId, {
      resolve: reply => {
        welcomed = true;
        this.loadedInKernel = true;
        this.model.welcome(reply.state as PanelState, reply.turns as TurnView[]);
      },
      reject: err => {
        if (!(err instanceof ClosedError)) {
          this.model.setStatus('failed', err.message);
        }
      }
    });
    comm.onMsg = msg => {
      if (generation !== this.generation) {
        return;
      }
      this.onMessage(msg.content.data as unknown as KernelMessage, msg.buffers ?? []);
    };
    comm.onClose = () => {
      if (generation !== this.generation) {
        return;
      }
      this.comm = null;
      this.failPending('the kernel closed the panel’s connection');
      if (this.restarting) {
        return;
      }
      if (welcomed && this.loadedInKernel) {
        // lost without an unload (e.g. the kernel is going down): open it again shortly
        this.model.setStatus('waiting', 'the connection to the kernel was lost');
        setTimeout(() => {
          if (generation === this.generation && !this.comm && !this.restarting) {
            this.connect();
          }
        }, 1000);
        return;
      }
      if (!welcomed && this.reloadAfterRestart) {
        this.reloadAfterRestart = false; // a restarted kernel that had dataask: load it again
        void this.loadDataask();
        return;
      }
      // closed before the welcome: the kernel has no "dataask" target
      this.model.setStatus('not-loaded', welcomed ? 'dataask was unloaded' : '');
    };
    try {
      comm.open({ op: 'hello', id: helloId });
    } catch (err) {
      this.comm = null;
      this.pending.delete(helloId);
      this.model.setStatus('waiting', String(err));
    }
  }

  private closeComm(): void {
    this.generation++;
    const comm = this.comm;
    this.comm = null;
    this.failPending('the connection to the kernel was closed');
    if (comm && !comm.isDisposed) {
      try {
        comm.close();
      } catch {
        // the kernel is gone already
      }
    }
  }

  private failPending(reason: string): void {
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) {
      p.reject(new ClosedError(reason));
    }
  }

  private onMessage(msg: KernelMessage, buffers: (ArrayBuffer | ArrayBufferView)[]): void {
    if (msg.type === 'closed') {
      this.loadedInKernel = false; // %unload_ext dataask: do not load it again by ourselves
    }
    if (msg.type === 'reply') {
      const p = this.pending.get(msg.id);
      if (!p) {
        return;
      }
      this.pending.delete(msg.id);
      if (msg.ok) {
        const views = buffers.map(b =>
          b instanceof DataView
            ? b
            : ArrayBuffer.isView(b)
              ? new DataView(b.buffer, b.byteOffset, b.byteLength)
              : new DataView(b)
        );
        p.resolve({ ...msg, buffers: views });
      } else {
        p.reject(new Error(msg.error || 'the kernel refused the request'));
      }
      return;
    }
    this.model.apply(msg);
  }
}
