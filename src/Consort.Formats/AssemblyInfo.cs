namespace Consort.Formats;
