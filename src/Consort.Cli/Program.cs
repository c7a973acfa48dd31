using Consort.Cli;

return await CliRunner.InvokeAsync(CliApp.CreateRoot(), args);
