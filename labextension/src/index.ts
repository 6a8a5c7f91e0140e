/**
 * functions-nb JupyterLab extension: a left-sidebar panel over the functions_nb server
 * extension's REST API, and a command `functions-nb:open` (in the palette) that shows it.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';

import { Api } from './api';
import { functionsIcon } from './icon';
import { FunctionsPanel, PANEL_ID } from './panel';

export { Api, ApiError } from './api';
export { FunctionsPanel, PANEL_ID } from './panel';

namespace CommandIDs {
  export const open = 'functions-nb:open';
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'functions-nb:sidebar',
  description: 'A sidebar panel for functions-nb: functions, invoke, human tasks, recent executions.',
  autoStart: true,
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ): void => {
    const panel = new FunctionsPanel(new Api(app.serviceManager.serverSettings));
    panel.title.icon = functionsIcon;
    panel.title.caption = 'Functions';
    app.shell.add(panel, 'left', { rank: 1000 });
    if (restorer) {
      restorer.add(panel, PANEL_ID);
    }

    app.commands.addCommand(CommandIDs.open, {
      label: 'Show Functions Panel',
      caption: 'Show the functions-nb sidebar (functions, invoke, human tasks)',
      icon: functionsIcon,
      execute: () => {
        app.shell.activateById(panel.id);
      }
    });
    if (palette) {
      palette.addItem({ command: CommandIDs.open, category: 'Functions' });
    }
  }
};

export default plugin;
